{#-
    Every event with its project day, week (Monday), month and hour in the project's time zone
    (macros/project_time.sql). A view: the zone logic is a cheap expression, and readers keep
    their filters on stg_events' columns.
-#}
-- depends_on: {{ ref('stg_projects') }}

with

events as (

    select * from {{ ref('stg_events') }}

),

localized as (

    select
        *,
        {{ in_project_timezone('toDate', 'created_at') }} as day,
        toMonday(day) as week,
        toStartOfMonth(day) as month,
        {{ in_project_timezone('toHour', 'created_at') }} as hour

    from events

)

select * from localized
