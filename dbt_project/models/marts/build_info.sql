{#-
    One row: when the last dbt run that built every incremental mart finished them. The
    dashboards read it to tell their users that the figures are stale; a run in which any of
    these marts fails skips this model, so it keeps the time of the last complete build.
    Every mart the incremental job builds is a parent (tests/models check the list).
-#}
-- depends_on: {{ ref('sessions') }}
-- depends_on: {{ ref('daily_metrics') }}
-- depends_on: {{ ref('hourly_metrics') }}
-- depends_on: {{ ref('daily_visitor_states') }}
-- depends_on: {{ ref('daily_visitor_states_current') }}
-- depends_on: {{ ref('daily_page_states_current') }}
-- depends_on: {{ ref('events_current') }}
-- depends_on: {{ ref('profiles') }}
-- depends_on: {{ ref('daily_page_states') }}
-- depends_on: {{ ref('daily_event_value_states') }}
-- depends_on: {{ ref('daily_event_value_states_current') }}
-- depends_on: {{ ref('daily_session_states') }}
{{ config(materialized='table', order_by='built_at') }}

with

final as (

    select
        now64(3, 'UTC') as built_at,
        '{{ invocation_id }}' as invocation_id

)

select * from final
