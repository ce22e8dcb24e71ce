-- The raw events table is the landing table: every accepted event is parsed into it once and
-- rewritten by its merges, so its column types are chosen for that path. Reads go through
-- dbt's stg_events, which is rebuilt incrementally and keeps these columns LowCardinality
-- (toLowCardinality there), so the models and dashboards read exactly the types they did.
--
-- LowCardinality costs every insert a dictionary lookup per value and column, and every
-- merge a dictionary rebuild per column, even for a column that is empty in most rows; a
-- plain String that is mostly empty is stored sparsely and costs almost nothing. Measured on
-- the embedded warehouse with 400,000 collector-made import rows (bench/raw_schema.py: 8
-- inserts of 50,000, then OPTIMIZE FINAL; three rounds, this schema against the first):
-- insert 5.3-5.9 -> 3.7-4.3 us of CPU per row, the merge 2.3-2.8 -> 1.7-1.9 us, on disk +4 %
-- (7.44 -> 7.73 MB, LZ4). In bench/ingest.py (two runs each, one machine) /track/batch imports went from
-- 50.7-51.4 to 58.4-59.5 k events/s, and events landed per CPU-second of the whole stack from
-- 26.1-26.4 k to 30.1-31.2 k.
--
-- project_id and name stay LowCardinality: the first leads the sorting key and both filter
-- nearly every read of this table (staging's incremental runs, the realtime page).
-- On a server holding data this is a mutation that rewrites these columns in the background.
alter table {raw_database}.events
    modify column sdk_name String,
    modify column sdk_version String,
    modify column origin String,
    modify column referrer_name String,
    modify column referrer_type String,
    modify column utm_source String,
    modify column utm_medium String,
    modify column utm_campaign String,
    modify column country String,
    modify column region String,
    modify column city String,
    modify column os String,
    modify column os_version String,
    modify column browser String,
    modify column browser_version String,
    modify column device String,
    modify column brand String,
    modify column model String,
    modify column language String,
    modify column screen String,
    modify column bot_name String;
