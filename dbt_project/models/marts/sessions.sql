{#-
    The sessions mart. optimize_read_in_window_order lets the first window step of
    int_events_sessionized read stg_events in its sort order (project, device, time) instead
    of sorting it.
-#}
-- depends_on: {{ ref('int_events_localized') }}
{{
    config(
        materialized=device_sharded('incremental'),
        engine=device_sharded_engine(),
        sharding_key=var('device_sharding_key'),
        unique_key='device_id',
        order_by='(project_id, day, device_id, started_at)',
        partition_by='toYYYYMM(day)',
        query_settings={'optimize_read_in_window_order': 1},
    )
}}

with

session_events as (

    select * from {{ ref('int_events_sessionized') }}
    {%- if is_incremental() %}
    -- every device with events received since the last run gets all its sessions recomputed:
    -- a late event can merge, extend or start sessions anywhere in its history
    where device_id in ({{ affected_devices() }})
    {%- endif %}

),

session_figures as (

    select
        session_id,
        any(project_id) as project_id,
        any(device_id) as device_id,
        -- the first profile id the session carries (a visitor may log in mid-session)
        argMinIf(profile_id, created_at, profile_id != '') as profile_id,
        min(created_at) as started_at,
        max(created_at) as ended_at,
        toDecimal64(dateDiff('millisecond', started_at, ended_at), 3) / 1000 as duration_s,
        countIf(is_pageview) as pageviews,
        count() as events,
        cast(pageviews = 1 and events = 1, 'Bool') as is_bounce,
        argMinIf(path, created_at, is_pageview) as entry_path,
        argMaxIf(path, created_at, is_pageview) as exit_path,
        anyIf(event_id, starts_session) as first_event_id,
        min(session_events.day) as day,
        max(session_events.day) as end_day,
        max(received_at) as last_received_at
    from session_events
    group by session_id

),

-- Acquisition, geo and device fields are those of the session's first event. Joining them
-- back by event id is several times cheaper than carrying a dozen strings through the
-- aggregation above.
first_events as (

    select
        event_id,
        referrer,
        referrer_name,
        referrer_type,
        utm_source,
        utm_medium,
        utm_campaign,
        country,
        region,
        city,
        browser,
        os,
        device,
        hour
    from {{ ref('int_events_localized') }}
    {%- if is_incremental() %}
    where device_id in ({{ affected_devices() }})
    {%- endif %}

),

sessions as (

    select
        session_figures.project_id as project_id,
        session_figures.session_id as session_id,
        session_figures.device_id as device_id,
        session_figures.profile_id as profile_id,
        session_figures.started_at as started_at,
        session_figures.ended_at as ended_at,
        session_figures.duration_s as duration_s,
        session_figures.pageviews as pageviews,
        session_figures.events as events,
        session_figures.is_bounce as is_bounce,
        session_figures.entry_path as entry_path,
        session_figures.exit_path as exit_path,
        first_events.referrer as referrer,
        first_events.referrer_name as referrer_name,
        first_events.referrer_type as referrer_type,
        first_events.utm_source as utm_source,
        first_events.utm_medium as utm_medium,
        first_events.utm_campaign as utm_campaign,
        first_events.country as country,
        first_events.region as region,
        first_events.city as city,
        first_events.browser as browser,
        first_events.os as os,
        first_events.device as device,
        session_figures.day as day,
        first_events.hour as hour,
        session_figures.end_day as end_day,
        session_figures.last_received_at as last_received_at
    -- the big side streams, the sessions are the hash table
    from first_events
    inner join session_figures on first_events.event_id = session_figures.first_event_id

)

select * from sessions
