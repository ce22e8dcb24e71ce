-- Work list of the privacy commands (lifecycle/privacy.py): after an erasure deletes a
-- profile's or a device's rows, the derived rows it touched must be computed again from what
-- is left. The incremental models only see rows received since their last run, so an erasure
-- lists here the devices, project days and profiles to recompute; the models' incremental runs
-- read them (dbt_project/macros/recompute.sql) beside their watermark, and the erasure deletes
-- its rows once its dbt run has finished. A crashed erasure leaves its rows for the next
-- scheduled run to pick up. The erased id itself is never listed.
create table if not exists {raw_database}.recompute
(
    request_id  String,
    project_id  LowCardinality(String),
    kind        LowCardinality(String),  -- 'device' | 'day' | 'profile'
    value       String,                  -- the device or profile id ('' for a day)
    day         Date,                    -- the project day (kind 'day')
    created_at  DateTime64(3, 'UTC') default now64(3)
)
engine = MergeTree
order by (kind, project_id, value, day);

-- The id an erasure removes, held in memory only while its deletions run: the deletions name it
-- through a subquery on this table, so the mutation records ClickHouse keeps on disk (a file
-- per mutation beside the table's parts) never contain it. Memory engine: never written to disk,
-- empty after a restart.
create table if not exists {raw_database}.erase_targets
(
    request_id  String,
    project_id  String,
    value       String
)
engine = Memory;
