{{ session_breakdown(['country', 'region']) }}
