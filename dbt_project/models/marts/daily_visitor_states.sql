{#-
    Partial distinct-visitor states per project day: the dashboards merge the states of a range's
    days (groupBitmapMerge) into the exact distinct devices of the whole range — what a sum of
    daily visitors cannot give — without rescanning the events of closed days; they read this
    mart through daily_visitor_states_current, which adds the days it has not caught up with.

    Rolled up from daily_event_value_states' `event` rows instead of from the events
    (macros/current_days.sql): every event has exactly one name, so a day's name rows hold each
    of its events once, and their bitmaps merged are the day's devices, their page views summed
    the day's page views. Each row keeps the cutoff of the build that wrote its day there
    (docs/decisions/0047).
-#}
{#- on_schema_change: the columns are checked in macros/delete_insert.sql, more cheaply -#}
{{
    config(
        small_batches=true,
        on_schema_change=('fail' if target.name == 'cluster' else 'ignore'),
        unique_key='project_id, day',
        order_by='(project_id, day)',
    )
}}

{{ rolled_up_day_states('event') }}
