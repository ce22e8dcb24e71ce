-- The landing table's dimensions as plain String: LowCardinality cost every insert and merge
-- a dictionary per column, even when empty; stg_events makes them LowCardinality again for the
-- models. project_id and name stay LowCardinality (sorting key, filters). (ADR 0031)
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
