{{ session_breakdown(['entry_path'], where='pageviews > 0') }}
