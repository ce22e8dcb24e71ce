{#-
    A dense number per project and device (1, 2, 3, ... in order of first receipt): the per-day
    state marts keep a day's distinct visitors as a roaring bitmap of these numbers, which a
    range merges several times faster than hash sets of device ids (docs/decisions/0040).
    Append-only: a device keeps its number for good, so the bitmaps of days built at different
    times agree; a full refresh leaves this table as it is (full_refresh=false), since
    renumbering would invalidate every stored bitmap. An erasure deletes the device's row
    (lifecycle/privacy.py), and the device is numbered anew if it comes back.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        full_refresh=false,
        on_schema_change='fail',
        order_by='device_key',
    )
}}

with

events as (

    select device_key, project_id, device_id, received_at
    from {{ ref('stg_events') }}
    {%- if is_incremental() %}
    where received_at > {{ incremental_watermark('first_received_at') }}
    {%- endif %}

),

-- one row per key; were two devices' keys to collide (macros/current_days.sql, device_key),
-- either may hold it: they share the number. any(), not argMin over a tuple: 4.5x cheaper
devices as (

    select
        device_key,
        any(project_id) as project_id,
        any(device_id) as device_id,
        min(received_at) as first_received_at
    from events
    group by device_key

),

new_devices as (

    select * from devices
    {%- if is_incremental() %}
    where device_key not in (select device_key from {{ this }})
    {%- endif %}

),

final as (

    select
        device_key,
        {%- if is_incremental() %}
        (select max(device_number) from {{ this }})
            + row_number() over (order by first_received_at, device_key)
        {%- else %}
        row_number() over (order by first_received_at, device_key)
        {%- endif %} as device_number,
        project_id,
        device_id,
        first_received_at
    from new_devices

)

select * from final
