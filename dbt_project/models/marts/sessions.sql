{#-
    The sessions mart. A full refresh splits each device's timeline in one aggregation that
    reads stg_events in its sort order (optimize_aggregation_in_order); incremental runs' window
    steps read their spans in that order too (optimize_read_in_window_order) instead of sorting.

    Incremental runs recompute, per device with new events, the span of its history those can
    change (macros/session_spans.sql), write the sessions that came out different and replace
    the stored ones in the span (replace_spans, macros/delete_insert.sql): docs/decisions/0036.
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
        replace_spans={'start': 'started_at', 'end': 'ended_at', 'day': 'day'},
        order_by='(project_id, day, device_id, started_at)',
        partition_by='toYYYYMM(day)',
        query_settings={'optimize_read_in_window_order': 1, 'optimize_aggregation_in_order': 1},
    )
}}

{#- once: each is_incremental() call queries the stored columns (macros/should_full_refresh.sql) -#}
{%- set incremental = is_incremental() %}
{#- the session's first event's acquisition, geo and device fields -#}
{%- set first_event_columns = [
    'referrer', 'referrer_name', 'referrer_type', 'utm_source', 'utm_medium', 'utm_campaign',
    'country', 'region', 'city', 'browser', 'os', 'device', 'hour',
] %}
{%- set first_event = {} %}
{%- for column in first_event_columns %}
    {%- do first_event.update({column: 'session_figures.first_event.' ~ loop.index
                               if incremental else 'first_events.' ~ column}) %}
{%- endfor %}
{#- a full refresh's timelines: each event as (created_at, event_id, <these>...) -#}
{%- set timeline_columns = ['profile_id', 'is_pageview', 'path', 'day', 'received_at',
                           'event_name', 'properties'] %}
{%- set at = {} %}
{%- for column in timeline_columns %}
    {%- do at.update({column: loop.index + 2}) %}
{%- endfor %}
{#- a timeline session's distinct (event name, path, properties) -#}
{%- set timeline_contents -%}
arrayDistinct(arrayMap(
            event -> (tupleElement(event, {{ at.event_name }}), tupleElement(event, {{ at.path }}),
                      tupleElement(event, {{ at.properties }})),
            session_events))
{%- endset %}

with
{% if incremental %}
new_spans as ({{ new_event_spans() }}),

-- the stored sessions of those devices that end within the gap of their first new event or later
stored_near as (

    select * from {{ this }}
    prewhere ended_at >= (select min(first_at) from new_spans) - {{ session_gap() }}
    where (project_id, device_id) in (select project_id, device_id from new_spans)

),

-- Per device with new events: from the first to the last of them, widened to the stored
-- sessions within the gap of that stretch (they can change). Every event before or after the
-- span lies more than the gap away, so the span's sessions are its own. One aggregation over
-- the new events and the device's recent stored sessions (a join would be evaluated again at
-- each use of this CTE).
spans as (

    select
        project_id,
        device_id,
        arrayFilter(
            session -> session.2 >= first_new - {{ session_gap() }}
                and session.1 <= last_new + {{ session_gap() }},
            stored
        ) as touched,
        arrayMin(arrayPushBack(arrayMap(session -> session.1, touched), first_new)) as span_start,
        arrayMax(arrayPushBack(arrayMap(session -> session.2, touched), last_new)) as span_end
    from (
        select
            project_id,
            device_id,
            minIf(span_start, is_new) as first_new,
            maxIf(span_end, is_new) as last_new,
            groupArrayIf((span_start, span_end), not is_new) as stored
        from (
            select project_id, device_id, first_at as span_start, last_at as span_end,
                true as is_new
            from new_spans

            union all

            select project_id, device_id, started_at, ended_at, false
            from stored_near
        )
        group by project_id, device_id
    )

),

span_events as (

    {{ events_within('spans', 'span_start', 'span_end') }}

),

{{ session_windows('span_events') }},

session_events as (

    select * from sessionized

),
session_figures as (

    select
        session_id,
        any(project_id) as project_id,
        any(device_id) as device_id,
        -- the first profile id the session carries (a visitor may log in mid-session)
        argMinIf(profile_id, (created_at, event_id), profile_id != '') as profile_id,
        min(created_at) as started_at,
        max(created_at) as ended_at,
        toDecimal64(dateDiff('millisecond', started_at, ended_at), 3) / 1000 as duration_s,
        countIf(is_pageview) as pageviews,
        count() as events,
        cast(pageviews = 1 and events = 1, 'Bool') as is_bounce,
        argMinIf(path, (created_at, event_id), is_pageview) as entry_path,
        argMaxIf(path, (created_at, event_id), is_pageview) as exit_path,
        min(session_events.day) as day,
        max(session_events.day) as end_day,
        max(received_at) as last_received_at,
        -- a span's few events: carried through the aggregation (a join back would read them
        -- again, every CTE being evaluated where it is used)
        argMin(({{ first_event_columns | join(', ') }}), (created_at, event_id)) as first_event,
        {{ sorted_contents('groupUniqArray((event_name, path, properties))') }} as distinct_events
    from session_events
    group by session_id

),
{% else %}
-- A full refresh splits every device's timeline into its sessions in one aggregation over
-- stg_events' sort order (macros/timeline_sessions.sql), instead of two window passes, a
-- group by session and a join back for the first event's fields (docs/decisions/0046).
timelines as (

    {{ timeline_sessions(ref('int_events_localized'), timeline_columns) }}

),

session_figures as (

    select
        session_id,
        project_id,
        device_id,
        -- the first profile id the session carries (a visitor may log in mid-session)
        tupleElement(arrayFirst(event -> tupleElement(event, {{ at.profile_id }}) != '',
                                session_events), {{ at.profile_id }}) as profile_id,
        session_events[1].1 as started_at,
        session_events[-1].1 as ended_at,
        toDecimal64(dateDiff('millisecond', started_at, ended_at), 3) / 1000 as duration_s,
        toUInt64(arrayCount(event -> tupleElement(event, {{ at.is_pageview }}), session_events))
            as pageviews,
        toUInt64(length(session_events)) as events,
        cast(pageviews = 1 and events = 1, 'Bool') as is_bounce,
        tupleElement(arrayFirst(event -> tupleElement(event, {{ at.is_pageview }}), session_events),
                     {{ at.path }}) as entry_path,
        tupleElement(arrayLast(event -> tupleElement(event, {{ at.is_pageview }}), session_events),
                     {{ at.path }}) as exit_path,
        -- a device's project days only grow along its timeline
        tupleElement(session_events[1], {{ at.day }}) as day,
        tupleElement(session_events[-1], {{ at.day }}) as end_day,
        arrayMax(event -> tupleElement(event, {{ at.received_at }}), session_events)
            as last_received_at,
        session_events[1].2 as first_event_id,
        {{ sorted_contents(timeline_contents) }} as distinct_events
    from timelines

),

-- Acquisition, geo and device fields are those of the session's first event. Joining them
-- back by event id is cheaper than carrying a dozen strings through the timelines.
first_events as (

    select
        event_id,
        {{ first_event_columns | join(',\n        ') }}
    from {{ ref('int_events_localized') }}

),
{% endif %}
sessions as (

    select
        session_figures.project_id as project_id,
        session_figures.session_id as session_id,
        session_figures.device_id as device_id,
        {{ device_key('session_figures.project_id', 'session_figures.device_id') }} as device_key,
        session_figures.profile_id as profile_id,
        session_figures.started_at as started_at,
        session_figures.ended_at as ended_at,
        session_figures.duration_s as duration_s,
        session_figures.pageviews as pageviews,
        session_figures.events as events,
        session_figures.is_bounce as is_bounce,
        session_figures.entry_path as entry_path,
        session_figures.exit_path as exit_path,
        {%- for column in first_event_columns if column != 'hour' %}
        {{ first_event[column] }} as {{ column }},
        {%- endfor %}
        session_figures.day as day,
        {{ first_event.hour }} as hour,
        session_figures.end_day as end_day,
        session_figures.last_received_at as last_received_at,
        -- what the session contains: its distinct (event name, path, properties), as three
        -- aligned arrays the overview's event-level filters test (arrayExists)
        arrayMap(e -> e.1, session_figures.distinct_events) as event_names,
        arrayMap(e -> e.2, session_figures.distinct_events) as paths,
        arrayMap(e -> e.3, session_figures.distinct_events) as event_properties,
        -- its events' names and properties as hashed (field, value) pairs: a filter on one
        -- value tests membership instead of comparing every element (paths left out: every
        -- session has several, which would lengthen every array; docs/decisions/0044)
        arraySort(arrayDistinct(arrayConcat(
            arrayMap(e -> {{ event_value_key("'event'", 'toString(e.1)') }},
                     session_figures.distinct_events),
            arrayFlatten(arrayMap(
                e -> arrayMap((k, v) -> {{ event_value_key("concat('prop:', k)", 'v') }},
                              mapKeys(e.3), mapValues(e.3)),
                session_figures.distinct_events))))) as event_value_keys
    {%- if incremental %}
    from session_figures
    {%- else %}
    -- the big side streams, the sessions are the hash table
    from first_events
    inner join session_figures on first_events.event_id = session_figures.first_event_id
    {%- endif %}

)

{%- if incremental and replaces_spans() %}
-- a session the new events left as it was (most of those re-read for `reprocess_minutes`) is
-- not written again
select * from sessions
where tuple(*) not in (select * from stored_near)
{%- else %}
select * from sessions
{%- endif %}
