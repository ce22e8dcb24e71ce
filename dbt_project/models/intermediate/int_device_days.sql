{#-
    One row per project, device and project day with an event: the compact activity history
    that retention is computed from. Incremental: devices with newly received events get their
    days recomputed.
-#}
{#- tags: only retention reads it, so the hourly job builds it, before retention (0048) -#}
{{
    config(
        tags=['hourly'],
        materialized=device_sharded('incremental'),
        engine=device_sharded_engine(),
        sharding_key=var('device_sharding_key'),
        incremental_strategy='delete+insert',
        unique_key='device_id',
        order_by='(project_id, device_id, day)',
    )
}}

with

events as (

    select project_id, device_id, day, received_at
    from {{ ref('int_events_localized') }}
    {%- if is_incremental() %}
    where device_id in ({{ affected_devices() }})
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
