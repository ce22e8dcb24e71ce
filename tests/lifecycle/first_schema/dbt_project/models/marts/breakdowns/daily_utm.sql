{{ session_breakdown(['utm_source', 'utm_medium', 'utm_campaign']) }}
