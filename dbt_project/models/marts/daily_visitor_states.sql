{#-
    Partial distinct-visitor states per project day: the dashboards merge the states of a range's
    days (uniqExactMerge) into the exact distinct devices of the whole range — what a sum of
    daily visitors cannot give — without rescanning the events of closed days. The query is
    macros/current_days.sql's day_states, as for daily_page_states; the dashboards read this
    mart through daily_visitor_states_current, which adds the days it has not caught up with.
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

{{ day_states() }}
