{#-
    One row per event: bots and the reserved session_start / session_end events dropped, and
    duplicates of an event id (retried deliveries not merged away yet) reduced to the copy the
    collector received first.

    Materialized as an incremental table (not a view) so that downstream models read deduplicated
    events with their filters pushed into the primary key; deduplicating inside a view would make
    every reader sort the whole raw table. Each run takes every copy of every event id received
    since the last run (minus `reprocess_minutes`) and replaces those ids. Sorted by device and
    time for the session models; partitioned by week so that the per-day marts re-read only the
    weeks of the days they recompute.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='event_id',
        order_by='(project_id, device_id, created_at, event_id)',
        partition_by='toMonday(created_at)',
        query_settings={'max_partitions_per_insert_block': 0},
    )
}}

with

raw_events as (

    select * from {{ source('trackhouse', 'events') }}
    where not is_bot
        and name not in ('session_start', 'session_end')
    {% if is_incremental() %}
        -- every copy of the ids received since the last run, older copies included, so the
        -- first-received copy wins exactly as in a full refresh
        and id in (
            select id from {{ source('trackhouse', 'events') }}
            where received_at > {{ incremental_watermark('received_at') }}
        )
    {% endif %}

),

{% if is_incremental() %}
-- a run's batch is small: keep the first-received copy of each id directly
deduplicated as (

    select * from raw_events
    order by received_at, created_at, device_id
    limit 1 by id

),
{% else %}
duplicated_ids as (

    select id
    from raw_events
    group by id
    having count() > 1

),

-- Over the whole table duplicates are rare, so only their rows are sorted: the first-received
-- copy of each id (ties broken by the rest of the row's key); every other row passes through
-- unsorted.
deduplicated as (

    select * from raw_events
    where id not in (select id from duplicated_ids)

    union all

    select * from (
        select * from raw_events
        where id in (select id from duplicated_ids)
        order by received_at, created_at, device_id
        limit 1 by id
    )

),
{% endif %}

renamed as (

    select
        id as event_id,
        project_id,
        name as event_name,
        cast(name = 'screen_view', 'Bool') as is_pageview,
        device_id,
        profile_id,
        session_id as live_session_id,
        created_at,
        received_at,
        imported_at,
        sdk_name,
        sdk_version,
        origin,
        -- the URL path only: no query string, no fragment
        cutQueryStringAndFragment(path) as path,
        query,
        hash,
        title,
        referrer,
        referrer_name,
        referrer_type,
        utm_source,
        utm_medium,
        utm_campaign,
        utm_term,
        utm_content,
        country,
        region,
        city,
        latitude,
        longitude,
        os,
        os_version,
        browser,
        browser_version,
        device,
        brand,
        model,
        language,
        screen,
        properties,
        groups,
        revenue,
        duration_ms

    from deduplicated

)

select * from renamed
