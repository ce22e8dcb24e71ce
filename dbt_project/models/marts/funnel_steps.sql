{#-
    metrics.md, "Funnels": for each device and each project day D on which it performed step 1,
    its level is the deepest step reached in order (each step strictly later than the one
    before) within the window after one of its step-1 events of day D; later steps may fall on
    later days. Step k counts the (device, D) pairs with level >= k.
-#}
{#- on_schema_change: the columns are checked in macros/delete_insert.sql, more cheaply -#}
{#- tags: built by the hourly job, not every 5 minutes (docs/decisions/0048) -#}
{{
    config(
        tags=['hourly'],
        small_batches=true,
        on_schema_change=('fail' if target.name == 'cluster' else 'ignore'),
        unique_key='project_id, funnel, day',
        order_by='(project_id, funnel, day, step)',
        post_hook=[
            "{% if is_incremental() %}delete from {{ this }} where (project_id, funnel, definition_hash) not in (select project_id, funnel, definition_hash from ({{ funnel_definitions() }})){% endif %}",
        ],
    )
}}
{%- set shape = funnel_shape() %}
{%- set window_days = ((shape['windows'] | max if shape['windows'] else 0) / 86400) | round(0, 'ceil') | int + 1 %}

with

funnels as ({{ funnel_definitions() }}),

{% if is_incremental() %}
changed_funnels as (

    -- funnels added or changed since the last run
    select project_id, funnel from funnels
    where (project_id, funnel, definition_hash) not in (
        select distinct project_id, funnel, definition_hash from {{ this }}
    )

),

affected_days as (

    -- days whose step-1 events may have gained a step: those of the new events and the
    -- window before them
    select distinct
        events.project_id as project_id,
        funnels.funnel as funnel,
        arrayJoin(arrayMap(offset -> events.day - offset, range({{ window_days + 1 }}))) as day
    from {{ ref('int_events_localized') }} as events
    inner join funnels on events.project_id = funnels.project_id
    where events.received_at > {{ incremental_watermark() }}

    union distinct

    -- days an erasure changed (macros/recompute.sql) and the window before them
    select distinct
        recomputed.project_id,
        funnels.funnel,
        arrayJoin(arrayMap(offset -> recomputed.day - offset, range({{ window_days + 1 }})))
    from ({{ recomputed_days() }}) as recomputed
    inner join funnels on recomputed.project_id = funnels.project_id

    union distinct

    -- every day of a changed funnel's project (nothing is read when no funnel changed)
    select distinct events.project_id, changed_funnels.funnel, events.day
    from {{ ref('int_events_localized') }} as events
    inner join changed_funnels on events.project_id = changed_funnels.project_id
    where events.project_id in (select project_id from changed_funnels)

),
{% endif %}

events as (

    select project_id, device_id, event_name, created_at, day, received_at
    from {{ ref('int_events_localized') }}
    where project_id in (select project_id from funnels)
    {%- if is_incremental() %}
        and created_at >= (
            select toDateTime64(min(day), 3, 'UTC') - toIntervalDay(1) from affected_days)
        and day >= (select min(day) from affected_days)
    {%- endif %}

),

{%- for window_seconds in shape['windows'] or [var('funnel_default_window_seconds')] %}
{%- set days = (window_seconds / 86400) | round(0, 'ceil') | int + 1 %}
funnel_events_{{ loop.index }} as (

    -- the events of the funnels with a window of {{ window_seconds }} s: each event once per
    -- such funnel of its project that has its name as a step, repeated for every project day D
    -- whose chains it may belong to (a step-1 event starts chains on its own day only, a later
    -- step continues chains started up to the window before)
    select
        events.project_id as project_id,
        funnels.funnel as funnel,
        events.device_id as device_id,
        funnels.steps as steps,
        events.event_name as event_name,
        events.created_at as created_at,
        events.day as event_day,
        events.received_at as received_at,
        arrayJoin(
            if(
                has(arrayPopFront(funnels.steps), events.event_name),
                arrayMap(offset -> events.day - offset, range({{ days + 1 }})),
                [events.day]
            )
        ) as day
    from events
    inner join funnels
        on events.project_id = funnels.project_id
        and funnels.window_seconds = {{ window_seconds }}
    where has(funnels.steps, events.event_name)

),

{% endfor %}
levels as (

    {%- for window_seconds in shape['windows'] or [var('funnel_default_window_seconds')] %}
    select
        project_id,
        funnel,
        device_id,
        day,
        any(funnel_events.steps) as steps,
        windowFunnel({{ window_seconds * 1000 }}, 'strict_increase')(
            toUInt64(toUnixTimestamp64Milli(created_at)),
            -- only step-1 events of day D start a chain
            event_name = funnel_events.steps[1] and event_day = funnel_events.day
            {%- for step in range(2, shape['max_steps'] + 1) %},
            event_name = funnel_events.steps[{{ step }}]
            {%- endfor %}
        ) as level,
        max(received_at) as last_received_at
    from funnel_events_{{ loop.index }} as funnel_events
    {%- if is_incremental() %}
    where (project_id, funnel, day) in (select project_id, funnel, day from affected_days)
    {%- endif %}
    group by project_id, funnel, device_id, day
    -- (device, D) pairs without a step-1 event on D
    having level > 0
    {%- if not loop.last %}

    union all
    {% endif %}
    {%- endfor %}

),

final as (

    select
        project_id,
        funnel,
        day,
        step,
        steps[step] as event_name,
        countIf(level >= step) as visitors,
        visitors / countIf(level >= 1) as conversion_rate,
        any(funnels.definition_hash) as definition_hash,
        max(levels.last_received_at) as last_received_at
    from levels
    array join arrayEnumerate(steps) as step
    inner join funnels using (project_id, funnel)
    group by project_id, funnel, day, step, event_name

)

select * from final
