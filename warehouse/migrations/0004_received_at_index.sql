-- Staging's incremental runs read the events received since their last run
-- (stg_events: `received_at > <watermark>`). The table is sorted by project, day and device,
-- so without an index that condition reads the received_at of every row ever stored; a
-- minmax index per granule lets the read skip every granule whose newest receive time is older
-- than the watermark. Live events are received within seconds of their time, which the sort
-- order follows, so all but the newest granules are skipped; imported history is received now
-- whatever its time, and its granules are read, as they must be.
--
-- On a table holding data, MATERIALIZE INDEX builds the index for existing parts as a
-- background mutation; until it finishes, those parts are simply read (results are the same).
alter table {raw_database}.events
    add index if not exists received_at_minmax received_at type minmax granularity 1;
alter table {raw_database}.events materialize index received_at_minmax;
