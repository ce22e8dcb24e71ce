{#-
    One row per project, device and project day with an event: the compact activity history
    that retention is computed from. Incremental: the (device, day)s with newly received events
    are recomputed; a device's other days cannot change (docs/decisions/0036).
-#}
{{
    config(
        materialized=device_sharded('incremental'),
        engine=device_sharded_engine(),
        sharding_key=var('device_sharding_key'),
        incremental_strategy='delete+insert',
        unique_key='project_id, device_id, day',
        order_by='(project_id, device_id, day)',
    )
}}

with
{% if is_incremental() %}
-- the days of the events received since the last run, and every day of an erasure's devices
new_device_days as (

    select project_id, device_id, day
    from {{ ref('int_events_localized') }}
    where received_at > {{ incremental_watermark() }}

    union distinct

    select project_id, device_id, day
    from {{ ref('int_events_localized') }}
    where device_id in ({{ recomputed_devices() }})

),
{% endif %}
events as (

    select project_id, device_id, day, received_at
    from {{ ref('int_events_localized') }}
    {%- if is_incremental() %}
    -- a project day lies within 14 hours of its UTC day: the bound skips the older weeks
    where created_at >= (
            select toDateTime64(min(day), 3, 'UTC') - toIntervalDay(1) from new_device_days)
        and (project_id, device_id, day) in (select * from new_device_days)
    {%- endif %}

),

device_days as (

    select
        project_id,
        device_id,
        day,
        count() as events,
        max(received_at) as last_received_at
    from events
    group by project_id, device_id, day

)

select * from device_days
