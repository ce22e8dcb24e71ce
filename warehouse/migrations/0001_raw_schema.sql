-- The raw schema: what the collector lands and dbt reads.
--
-- Deduplication (a retried delivery never counts twice) works in three layers:
--   1. the collector drops an event id it has already accepted (Redis, short TTL);
--   2. the worker inserts every batch with an insert_deduplication_token derived from the
--      batch, so a batch retried after a lost acknowledgement is not stored twice
--      (non_replicated_deduplication_window enables that on a plain MergeTree; replicated
--      tables have it on by default);
--   3. events is a ReplacingMergeTree whose sorting key ends in the event id, so copies that
--      slip through both merge away, and staging (stg_events) keeps one row per id until they do.

create database if not exists {raw_database};

create table if not exists {raw_database}.events
(
    id              UUID,
    project_id      LowCardinality(String),
    name            LowCardinality(String),
    device_id       String,
    profile_id      String,
    session_id      String,
    -- event time: the client's timestamp clamped to [received_at - 7 days, received_at + 1 min],
    -- Delta + ZSTD because rows are sorted by time within a device, so deltas are small.
    created_at      DateTime64(3, 'UTC') codec(Delta, ZSTD(1)),
    received_at     DateTime64(3, 'UTC') codec(Delta, ZSTD(1)),
    imported_at     Nullable(DateTime64(3, 'UTC')),
    sdk_name        LowCardinality(String),
    sdk_version     LowCardinality(String),
    -- URL parts: high cardinality, repetitive text; ZSTD beats the default LZ4 several-fold.
    origin          LowCardinality(String),
    path            String codec(ZSTD(1)),
    query           String codec(ZSTD(1)),
    hash            String codec(ZSTD(1)),
    title           String codec(ZSTD(1)),
    referrer        String codec(ZSTD(1)),
    referrer_name   LowCardinality(String),
    referrer_type   LowCardinality(String),
    utm_source      LowCardinality(String),
    utm_medium      LowCardinality(String),
    utm_campaign    LowCardinality(String),
    utm_term        String codec(ZSTD(1)),
    utm_content     String codec(ZSTD(1)),
    country         LowCardinality(String),
    region          LowCardinality(String),
    city            LowCardinality(String),
    latitude        Nullable(Float32),
    longitude       Nullable(Float32),
    os              LowCardinality(String),
    os_version      LowCardinality(String),
    browser         LowCardinality(String),
    browser_version LowCardinality(String),
    device          LowCardinality(String),
    brand           LowCardinality(String),
    model           LowCardinality(String),
    language        LowCardinality(String),
    screen          LowCardinality(String),
    -- custom properties, values as text (the SDKs send JSON scalars); ZSTD(3) for the long tail
    properties      Map(LowCardinality(String), String) codec(ZSTD(3)),
    groups          Array(String),
    revenue         Int64 default 0,
    duration_ms     UInt32 default 0,
    -- bots are stored flagged, never counted: every model filters them out in staging
    is_bot          Bool default false,
    bot_name        LowCardinality(String)
)
engine = ReplacingMergeTree
partition by toYYYYMM(created_at)
-- per-project time-range scans first; device and time next so one device's events are
-- adjacent (sessions, funnels, retention read them in that order); the id last so that
-- copies of one event share a sorting key and merge away.
order by (project_id, toDate(created_at), device_id, created_at, id)
settings non_replicated_deduplication_window = 10000;

-- Profiles as versioned rows: one row per identify / increment / decrement call.
-- identify rows carry the fields they set (NULL = not carried, keep the earlier value);
-- increment and decrement rows carry (property, delta), summed at read time, so
-- concurrent updates are exact without read-modify-write.
create table if not exists {raw_database}.profiles
(
    id           UUID,
    project_id   LowCardinality(String),
    profile_id   String,
    kind         LowCardinality(String),  -- 'identify' | 'increment' | 'decrement'
    first_name   Nullable(String),
    last_name    Nullable(String),
    email        Nullable(String),
    avatar       Nullable(String),
    properties   Map(LowCardinality(String), String) codec(ZSTD(3)),
    property     String,
    delta        Float64 default 0,
    updated_at   DateTime64(3, 'UTC'),
    received_at  DateTime64(3, 'UTC')
)
engine = ReplacingMergeTree
order by (project_id, profile_id, updated_at, id)
settings non_replicated_deduplication_window = 10000;

-- Projects mirrored from the metadata database so SQL models can use their time zones.
create table if not exists {raw_database}.projects
(
    id          String,
    name        String,
    domain      String,
    timezone    LowCardinality(String) default 'UTC',
    created_at  DateTime64(3, 'UTC'),
    updated_at  DateTime64(3, 'UTC'),
    is_deleted  UInt8 default 0
)
engine = ReplacingMergeTree(updated_at, is_deleted)
order by id;
