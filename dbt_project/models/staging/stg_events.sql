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
    since the last run (minus `reprocess_minutes`) and writes the ids whose first-received copy
    is new or changed, replacing a stored row only then (docs/decisions/0014). Sorted by device and
    time for the session models; partitioned by week so that the per-day marts re-read only the
    weeks of the days they recompute. The received_at index lets the incremental
    marts' scans for the rows received since their last run skip the older weeks (live events'
    receive times follow their week).
-#}
{#- on_schema_change: the columns are checked in macros/delete_insert.sql, more cheaply -#}
{{
    config(
        materialized=device_sharded('incremental'),
        engine=device_sharded_engine(),
        sharding_key=var('device_sharding_key'),
        incremental_strategy='delete+insert',
        unique_key='event_id',
        skip_delete_of_new_keys=true,
        on_schema_change=('fail' if target.name == 'cluster' else 'ignore'),
        order_by='(project_id, device_id, created_at, event_id)',
        partition_by='toMonday(created_at)',
        query_settings={'max_partitions_per_insert_block': 0},
        indexes=[{'name': 'received_at_minmax',
                  'definition': 'received_at type minmax granularity 1'}],
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
    -- scan skips old granules by the raw table's received_at index.
    prewhere id in ({{ new_event_ids() }})
    {%- endif %}
    where {{ counted_raw_event(run_started()) }}

),

{% if is_incremental() %}
-- a run's batch is small: keep the first-received copy of each id directly
deduplicated as (

    select * from raw_events
    {{ first_received_copy() }}

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
        {{ first_received_copy() }}
    )

),
{% endif %}

renamed as (

    select
{{ staged_event_columns() }}

    from deduplicated

){% if is_incremental() %},

-- The copies this table already holds of the batch's ids. A batch re-reads the last
-- `reprocess_minutes`, so most of its ids are stored already, with the same winning copy;
-- rewriting those rows would cost a DELETE (a mutation of every part) on every run. Only ids
-- that are new, or whose first-received copy changed (an earlier-received copy stored late),
-- are written; the delete+insert then deletes only when one of those is stored
-- (macros/delete_insert.sql, skip_delete_of_new_keys).
stored as (

    select event_id, received_at, created_at, device_id
    from {{ this }}
    prewhere event_id in ({{ new_event_ids() }})

),

changed as (

    select * from renamed
    where (event_id, received_at, created_at, device_id) not in (select * from stored)

)

select * from changed
{% else %}

select * from renamed
{% endif %}
