{#-
    One row per event: bots and the reserved session_start / session_end events dropped, and
    duplicates of an event id (retried deliveries not merged away yet) reduced to the copy the
    collector received first.

    Only events whose time lies in the range the collector accepts count: from 2000-01-01 UTC
    to a day after they were received (and after this run started). Older collectors and other
    writers may have stored times anywhere in DateTime64's range (1900-2299), but a project day
    is a Date (1970-2149): outside it toDate wraps around (1960 becomes 2139), and a lone 1974
    or 2120 day would stretch every chart, cohort and incremental scan of its project.

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
    {%- if is_incremental() %}
    -- every copy of the ids received since the last run, older copies included, so the
    -- first-received copy wins exactly as in a full refresh. PREWHERE: of the whole table only
    -- the id column is read, every other column only for those ids' rows (ClickHouse would
    -- otherwise move the cheaper filters below first and read them for every row). The inner
    -- scan skips old granules by the raw table's received_at index (migration 0003).
    prewhere id in (
        select id from {{ source('trackhouse', 'events') }}
        where received_at > {{ incremental_watermark('received_at') }}
    )
    {%- endif %}
    where not is_bot
        and name not in ('session_start', 'session_end')
        and created_at >= toDateTime64('2000-01-01 00:00:00', 3, 'UTC')
        and created_at <= least(received_at, {{ run_started() }}) + toIntervalDay(1)

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

-- The raw table keeps its dimensions as plain String (cheaper to land: see the warehouse's
-- migration 0002); this table, which the models read, holds them as LowCardinality.
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
        toLowCardinality(sdk_name) as sdk_name,
        toLowCardinality(sdk_version) as sdk_version,
        toLowCardinality(origin) as origin,
        -- the URL path only: no query string, no fragment
        cutQueryStringAndFragment(path) as path,
        query,
        hash,
        title,
        referrer,
        toLowCardinality(referrer_name) as referrer_name,
        toLowCardinality(referrer_type) as referrer_type,
        toLowCardinality(utm_source) as utm_source,
        toLowCardinality(utm_medium) as utm_medium,
        toLowCardinality(utm_campaign) as utm_campaign,
        utm_term,
        utm_content,
        toLowCardinality(country) as country,
        toLowCardinality(region) as region,
        toLowCardinality(city) as city,
        latitude,
        longitude,
        toLowCardinality(os) as os,
        toLowCardinality(os_version) as os_version,
        toLowCardinality(browser) as browser,
        toLowCardinality(browser_version) as browser_version,
        toLowCardinality(device) as device,
        toLowCardinality(brand) as brand,
        toLowCardinality(model) as model,
        toLowCardinality(language) as language,
        toLowCardinality(screen) as screen,
        properties,
        groups,
        revenue,
        duration_ms

    from deduplicated

)

select * from renamed
