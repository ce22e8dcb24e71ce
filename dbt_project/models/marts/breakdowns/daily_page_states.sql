{#-
    Partial distinct-visitor states and page views per URL path and project day: the top-pages
    tile merges a range's days per path (uniqExactMerge) into exact distinct visitors of the
    range. Rolled up from daily_event_value_states' `page` rows (each page view's path) instead
    of from the events (macros/current_days.sql, docs/decisions/0047); the dashboards read it
    through daily_page_states_current.
-#}
{#- index_granularity_bytes: a granule of about 1 MB of states, so that a range's read skips the
    days outside it instead of deserializing every state of a default 10 MB granule -#}
{#- on_schema_change: the columns are checked in macros/delete_insert.sql, more cheaply -#}
{{
    config(
        small_batches=true,
        on_schema_change=('fail' if target.name == 'cluster' else 'ignore'),
        unique_key='project_id, day',
        order_by='(project_id, day, path)',
        settings={'index_granularity_bytes': 1048576},
    )
}}

{{ rolled_up_day_states('page', key='path') }}
