{{ session_breakdown(['os']) }}
