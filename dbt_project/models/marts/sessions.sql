-- depends_on: {{ ref('int_events_localized') }}
{{
    config(
        unique_key='project_id, device_id',
        order_by='(project_id, day, device_id, started_at)',
        partition_by='toYYYYMM(day)',
    )
}}

with

session_events as (

    select * from {{ ref('int_events_sessionized') }}
    {% if is_incremental() %}
    -- every device with events received since the last run gets all its sessions recomputed:
    -- a late event can merge, extend or start sessions anywhere in its history
    where (project_id, device_id) in (
        select project_id, device_id from {{ ref('int_events_localized') }}
        where received_at > {{ incremental_watermark() }}
    )
    {% endif %}

),

sessions as (

    select
        project_id,
        session_id,
        device_id,
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
        -- acquisition, geo and device: those of the first event
        argMin(referrer, (created_at, event_id)) as referrer,
        argMin(referrer_name, (created_at, event_id)) as referrer_name,
        argMin(referrer_type, (created_at, event_id)) as referrer_type,
        argMin(utm_source, (created_at, event_id)) as utm_source,
        argMin(utm_medium, (created_at, event_id)) as utm_medium,
        argMin(utm_campaign, (created_at, event_id)) as utm_campaign,
        argMin(country, (created_at, event_id)) as country,
        argMin(region, (created_at, event_id)) as region,
        argMin(city, (created_at, event_id)) as city,
        argMin(browser, (created_at, event_id)) as browser,
        argMin(os, (created_at, event_id)) as os,
        argMin(device, (created_at, event_id)) as device,
        min(session_events.day) as day,
        argMin(session_events.hour, (created_at, event_id)) as hour,
        max(session_events.day) as end_day,
        max(received_at) as last_received_at

    from session_events
    group by project_id, device_id, session_id

)

select * from sessions
