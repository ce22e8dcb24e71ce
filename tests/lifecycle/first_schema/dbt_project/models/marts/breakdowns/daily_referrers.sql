{{ session_breakdown(['referrer_type', 'referrer_name', 'referrer']) }}
