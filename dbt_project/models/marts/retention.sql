{#-
    metrics.md, "Retention". Rebuilt on each run rather than updated: one late event can move a
    device into an earlier cohort, which changes that cohort's size and every period after it.
    The rebuild reads the compact int_device_days (one row per device and active day).
-#}
{#- tags: built by the hourly job, not every 5 minutes (docs/decisions/0048) -#}
{{
    config(
        tags=['hourly'],
        materialized='table',
        order_by='(project_id, granularity, cohort, period)',
    )
}}

with

device_days as (

    select project_id, device_id, day
    from {{ ref('int_device_days') }}

),

devices as (

    -- per device: its cohort day (first event ever in the project) and its active days
    select
        project_id,
        device_id,
        min(day) as first_day,
        groupUniqArray(day) as active_days
    from device_days
    group by project_id, device_id

),

device_periods as (

    select project_id, device_id, 'day' as granularity, first_day as cohort,
        arrayJoin(arrayMap(active_day -> toUInt32(active_day - first_day), active_days)) as period
    from devices

    union all

    select project_id, device_id, 'week' as granularity, toMonday(first_day) as cohort,
        arrayJoin(arrayDistinct(arrayMap(
            active_day -> intDiv(toUInt32(toMonday(active_day) - toMonday(first_day)), 7),
            active_days
        ))) as period
    from devices

),

retained as (

    select
        project_id,
        granularity,
        cohort,
        period,
        count() as retained
    from device_periods
    group by project_id, granularity, cohort, period

),

final as (

    select
        project_id,
        granularity,
        cohort,
        period,
        -- every device of a cohort is retained in period 0
        max(retained) over cohort_periods as cohort_size,
        retained,
        retained / cohort_size as rate
    from retained
    window cohort_periods as (partition by project_id, granularity, cohort)

)

select * from final
