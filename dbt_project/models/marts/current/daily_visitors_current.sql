{#-
    daily_metrics' distinct visitors and page views made current: its rows for the days before
    its open day, and for the open days the same figures computed from events_current at query
    time. The overview's daily series reads it: one finished row per closed day, where merging
    daily_visitor_states_current's states would rebuild every day's set of devices.
-#}
-- depends_on: {{ ref('stg_projects') }}
{{ config(materialized='view') }}

with

closed_days as (

    select project_id, day, visitors, pageviews
    from {{ ref('daily_metrics') }}
    where day < {{ open_day(mart=ref('daily_metrics')) }}

),

open_events as (

    select
        project_id,
        {{ in_project_timezone('toDate', 'created_at') }} as day,
        device_id,
        is_pageview
    from {{ ref('events_current') }}
    -- a project day starts less than a day before any instant of it
    where created_at >= {{ current_cutoff(ref('daily_metrics')) }} - toIntervalDay(1)

),

open_days as (

    select
        project_id,
        day,
        -- as daily_metrics counts them: exact distinct devices of the day
        uniqExact(device_id) as visitors,
        countIf(is_pageview) as pageviews
    from open_events
    where day >= {{ open_day(mart=ref('daily_metrics')) }}
    group by project_id, day

),

final as (

    select * from closed_days
    union all
    select * from open_days

)

select * from final
