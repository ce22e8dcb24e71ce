{#-
    Partial distinct-visitor states and page views per project day, event-level filter field
    (`event`, `path`, `prop:<key>`) and value: one row for every value an event of that day
    has. Each event has one value of a field (or none, for a property it lacks), so the events
    matching any condition on one field are those of the rows whose value matches, and merging
    those rows' states (groupBitmapMerge) gives their exact distinct visitors: the overview's
    visitors and page views under a filter on one event field, without scanning the events
    (docs/decisions/0042). macros/current_days.sql's day_states with the events unnested by
    field; the dashboards read it through daily_event_value_states_current, and
    daily_visitor_states rolls its `event` rows up per day.
-#}
{#- index_granularity_bytes: as daily_page_states, so a range's read skips the other days -#}
{#- on_schema_change: the columns are checked in macros/delete_insert.sql, more cheaply -#}
{{
    config(
        small_batches=true,
        on_schema_change=('fail' if target.name == 'cluster' else 'ignore'),
        unique_key='project_id, day',
        order_by='(project_id, day, field, value)',
        settings={'index_granularity_bytes': 1048576},
    )
}}

{{ day_states(keys=['field', 'value'], unnest=event_field_values(),
              unnest_from=['event_name', 'path', 'properties']) }}
