{{ session_breakdown(['browser']) }}
