{#-
    Sessions (docs/metrics.md#sessions) and what an incremental run of the session marts
    recomputes. A new event can only change the sessions within `session_gap_minutes` of it:
    it extends or joins those, or starts a session of its own. So an incremental run recomputes,
    per (project, device), one span of time: from the first to the last of its new events,
    widened to the stored sessions that lie within the gap of that stretch
    (docs/decisions/0036). The span starts and ends a session whatever the events outside it,
    so its events are sessionized alone.
-#}

{% macro session_windows(events) -%}
    {#-
        Two CTEs, `session_starts` and `sessionized`: the events of `events` (a relation or CTE
        holding whole device timelines, or whole spans of them) with their session.
    -#}
session_starts as (

    select
        *,
        row_number() over device_timeline = 1
            or dateDiff('millisecond', lagInFrame(created_at) over device_timeline, created_at)
                > {{ session_gap_ms() }}
            as starts_session

    from {{ events }}
    window device_timeline as (
        partition by project_id, device_id
        order by created_at, event_id
        rows between unbounded preceding and current row
    )

),

sessionized as (

    select
        *,
        -- created_at only grows along the timeline, so the latest start so far is this
        -- event's session start
        max(if(starts_session, created_at, toDateTime64(0, 3, 'UTC'))) over device_timeline
            as session_started_at,
        {{ session_id('session_started_at') }} as session_id

    from session_starts
    window device_timeline as (
        partition by project_id, device_id
        order by created_at, event_id
        rows between unbounded preceding and current row
    )

)
{%- endmacro %}


{% macro new_event_spans() -%}
    {#-
        Per (project, device) with events received since this model's last run: the time of
        the first and the last of them. An erasure's devices (macros/recompute.sql) span their
        whole history; so does every device where whole devices are replaced (replaces_spans).
    -#}
    {%- set whole_devices = not replaces_spans() %}
    {%- set history_start, history_end = "toDateTime64(0, 3, 'UTC')",
                                         "toDateTime64('2299-12-31 23:59:59.999', 3, 'UTC')" %}
    select
        project_id,
        device_id,
        {{ history_start if whole_devices else 'min(created_at)' }} as first_at,
        {{ history_end if whole_devices else 'max(created_at)' }} as last_at
    from {{ ref('int_events_localized') }}
    where received_at > {{ incremental_watermark() }}
    group by project_id, device_id

    union all

    select distinct
        project_id,
        device_id,
        {{ history_start }} as first_at,
        {{ history_end }} as last_at
    from {{ ref('int_events_localized') }}
    where device_id in ({{ recomputed_devices() }})
{%- endmacro %}


{% macro events_within(spans, start, end, columns='events.*') -%}
    {#-
        `columns` of the events of each row of `spans` (a CTE with project_id and device_id):
        its (project, device)'s events from `start` to `end` (columns of `spans`). stg_events
        is sorted by device within weekly partitions, so a device set selects granules of
        every week: the last day's events are read from the weeks since a day before the watermark,
        the older ones only for the spans that start before (late events, long sessions: few
        devices), whose granules in every week the primary key finds.
    -#}
    {%- set recent_from = '(' ~ incremental_watermark() ~ ' - toIntervalDay(1))' %}
    select {{ columns }}
    from (
        select * from {{ ref('int_events_localized') }}
        where created_at >= {{ recent_from }}
            and (project_id, device_id) in (select project_id, device_id from {{ spans }})

        union all

        select * from {{ ref('int_events_localized') }}
        where created_at < {{ recent_from }}
            and (project_id, device_id) in (select project_id, device_id from {{ spans }}
                                            where {{ start }} < {{ recent_from }})
    ) as events
    inner join {{ spans }}
        on events.project_id = {{ spans }}.project_id and events.device_id = {{ spans }}.device_id
    where events.created_at between {{ spans }}.{{ start }} and {{ spans }}.{{ end }}
{%- endmacro %}


{% macro replaces_spans() -%}
    {#-
        Whether the session marts' incremental runs replace spans of sessions (one server), or
        whole devices: on the `cluster` target dbt-clickhouse's distributed delete+insert runs,
        which deletes every row of the new rows' (project, device).
    -#}
    {{ return(target.name != 'cluster') }}
{%- endmacro %}


{% macro session_gap() -%}
    toIntervalMinute({{ var('session_gap_minutes') }})
{%- endmacro %}


{% macro session_gap_ms() -%}
    {#- The gap that ends a session, in milliseconds: more than this between two events. -#}
    {{ var('session_gap_minutes') }} * 60 * 1000
{%- endmacro %}


{% macro session_id(started_at) -%}
    {#- A session's id from its device and start: a rebuild, by either path, gives the same. -#}
    lower(hex(sipHash64(project_id, device_id, {{ started_at }})))
{%- endmacro %}
