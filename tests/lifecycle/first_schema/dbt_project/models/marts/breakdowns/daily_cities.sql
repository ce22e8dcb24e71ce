{{ session_breakdown(['country', 'region', 'city']) }}
