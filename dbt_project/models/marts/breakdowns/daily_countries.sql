{{ session_breakdown(['country']) }}
