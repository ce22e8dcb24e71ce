{{ session_breakdown(['exit_path'], where='pageviews > 0') }}
