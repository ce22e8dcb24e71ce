{#-
    Every event with its session (docs/metrics.md#sessions): a device's events in time order, a
    new session when more than `session_gap_minutes` passed since its previous event. Days do
    not cut sessions. The session id is derived from (project, device, session start), so a
    rebuild gives the same ids.

    A view: windows partitioned by (project_id, device_id) let ClickHouse push a device filter
    down to stg_events, whose sort order matches. The window logic is macros/session_spans.sql's,
    which the incremental runs of `sessions` apply to the spans they recompute.
-#}

with

events as (

    select * from {{ ref('int_events_localized') }}

),

{{ session_windows('events') }}

select * from sessionized
