{{ session_breakdown(['device']) }}
