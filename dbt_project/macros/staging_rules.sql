{#-
    Staging's rules for raw events, in one place: stg_events applies them to the rows it
    materializes, stg_event_copies to the rows received since (which the dashboards read
    through events_current until the next run takes them).
-#}

{% macro counted_raw_event(now) -%}
    {#-
        A raw row that counts: not a bot, not the reserved session_start / session_end events,
        and an event time inside the range the collector accepts (docs/decisions/0002), from
        2000-01-01 UTC to a day after it was received and after `now`.
    -#}
    not is_bot
    and name not in ('session_start', 'session_end')
    and created_at >= toDateTime64('2000-01-01 00:00:00', 3, 'UTC')
    and created_at <= least(received_at, {{ now }}) + toIntervalDay(1)
{%- endmacro %}


{% macro first_received_copy(id_columns='id') -%}
    {#- Of the stored copies of one event id (retried deliveries), the first received counts.
        `id_columns`: what tells the copies of one event apart from other events. -#}
    order by received_at, created_at, device_id
    limit 1 by {{ id_columns }}
{%- endmacro %}


{% macro staged_event_columns() -%}
    {#-
        The raw table keeps its dimensions as plain String (cheaper to land: see the
        warehouse's migration 0002); the staged rows, which the models read, hold them as
        LowCardinality.
    -#}
        id as event_id,
        project_id,
        name as event_name,
        cast(name = 'screen_view', 'Bool') as is_pageview,
        device_id,
        -- what visitors are counted and device numbers looked up by (macro device_key)
        {{ device_key() }} as device_key,
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
{%- endmacro %}


{% macro new_event_ids() -%}
    {#-
        stg_events' incremental batch: the ids with a copy received since its last run (minus
        `reprocess_minutes`). The raw table's received_at index skips the older granules.
    -#}
    select id from {{ source('trackhouse', 'events') }}
    where received_at > {{ incremental_watermark('received_at') }}
{%- endmacro %}
