{#-
    The sessions mart's rows that the overview reads, each with what the session contains: the
    distinct (event name, path, properties) of its events as three aligned arrays. The overview
    answers event-level filters (path, event name, event property: "sessions that contain a
    matching event") with arrayExists over a session's own arrays instead of joining sessions
    with raw events.

    A separate mart (not new columns of `sessions`), so existing deployments build it on their
    next run without a full refresh of `sessions`. Same sort order as `sessions`; incremental
    runs rewrite the sessions that `sessions` rewrote since the last run, and replace the stored
    rows within their spans (sessions the new events joined): docs/decisions/0036.
-#}
-- depends_on: {{ ref('int_events_localized') }}
{#- on_schema_change: the columns are checked in macros/delete_insert.sql, more cheaply -#}
{{
    config(
        materialized=device_sharded('incremental'),
        engine=device_sharded_engine(),
        sharding_key=var('device_sharding_key'),
        unique_key='project_id, device_id',
        on_schema_change=('fail' if target.name == 'cluster' else 'ignore'),
        replace_spans={'start': 'started_at',
                       'end': 'started_at + toIntervalMillisecond(toInt64(duration_s * 1000))',
                       'day': 'day'},
        order_by='(project_id, day, device_id, started_at)',
        partition_by='toYYYYMM(day)',
        query_settings={'optimize_read_in_window_order': 1, 'optimize_aggregation_in_order': 1},
    )
}}

{#- what the overview's session figures, breakdowns and session-level filters read -#}
{%- set session_columns = [
    'project_id', 'session_id', 'device_id', 'device_key', 'started_at', 'duration_s',
    'is_bounce', 'entry_path', 'exit_path', 'referrer', 'referrer_name', 'referrer_type', 'utm_source',
    'utm_medium', 'utm_campaign', 'country', 'region', 'city', 'browser', 'os', 'device', 'day',
    'last_received_at',
] %}

with
{% if is_incremental() %}
-- the sessions `sessions` rewrote since the last run, and all of an erasure's devices'
-- (on the `cluster` target: all sessions of their devices, which its delete+insert replaces)
sessions as (

    select {{ session_columns | join(', ') }}, ended_at
    from {{ ref('sessions') }}
    {%- if replaces_spans() %}
    where last_received_at > {{ incremental_watermark() }}
        or device_id in ({{ recomputed_devices() }})
    {%- else %}
    where (project_id, device_id) in (
        select project_id, device_id from {{ ref('sessions') }}
        where last_received_at > {{ incremental_watermark() }}
            or device_id in ({{ recomputed_devices() }}))
    {%- endif %}

),

-- their events: those from a session's first to its last event
contents_events as (

    {{ events_within('sessions', 'started_at', 'ended_at',
                     'sessions.session_id as session_id, events.event_name as event_name, '
                     'events.path as path, events.properties as properties') }}

),

contents as (

    select
        session_id,
        -- sorted, so that a rebuild gives the same arrays
        arraySort(e -> (e.1, e.2, toString(e.3)),
                  groupUniqArray((event_name, path, properties))) as distinct_events
    from contents_events
    group by session_id

),
{% else %}
sessions as (

    select {{ session_columns | join(', ') }}
    from {{ ref('sessions') }}

),

-- every device's sessions from its whole timeline in one pass (macros/timeline_sessions.sql)
contents as (

    select
        session_id,
        arraySort(e -> (e.1, e.2, toString(e.3)),
                  arrayDistinct(arrayMap(e -> (e.3, e.4, e.5), session_events)))
            as distinct_events
    from ({{ timeline_sessions(ref('stg_events'), ['event_name', 'path', 'properties']) }})

),
{% endif %}

session_contents as (

    select
        {%- for column in session_columns %}
        sessions.{{ column }} as {{ column }},
        {%- endfor %}
        arrayMap(e -> e.1, contents.distinct_events) as event_names,
        arrayMap(e -> e.2, contents.distinct_events) as paths,
        arrayMap(e -> e.3, contents.distinct_events) as event_properties,
        -- its events' names and properties as hashed (field, value) pairs: a filter on one
        -- value tests membership instead of comparing every element (paths left out: every
        -- session has several, which would lengthen every array)
        arraySort(arrayDistinct(arrayConcat(
            arrayMap(e -> {{ event_value_key("'event'", 'toString(e.1)') }}, contents.distinct_events),
            arrayFlatten(arrayMap(
                e -> arrayMap((k, v) -> {{ event_value_key("concat('prop:', k)", 'v') }},
                              mapKeys(e.3), mapValues(e.3)),
                contents.distinct_events))))) as event_value_keys
    -- the arrays stream, the sessions' columns are the hash table
    from contents
    inner join sessions on contents.session_id = sessions.session_id

)

select * from session_contents
