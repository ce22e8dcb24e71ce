{#-
    Every event with its session (docs/metrics.md#sessions): a device's events in time order, a
    new session when more than `session_gap_minutes` passed since its previous event. Days do
    not cut sessions. The session id is derived from (project, device, session start), so a
    rebuild gives the same ids.

    A view: windows partitioned by (project_id, device_id) let ClickHouse push a device filter
    (the incremental runs of `sessions`) down to stg_events, whose sort order matches.
-#}

with

events as (

    select * from {{ ref('int_events_localized') }}

),

session_starts as (

    select
        *,
        row_number() over device_timeline = 1
            or dateDiff('millisecond', lagInFrame(created_at) over device_timeline, created_at)
                > {{ var('session_gap_minutes') }} * 60 * 1000
            as starts_session

    from events
    window device_timeline as (
        partition by project_id, device_id
        order by created_at, event_id
        rows between unbounded preceding and current row
    )

),

sessionized as (

    select
        *,
        -- created_at only grows along the timeline, so the latest start so far is this
        -- event's session start
        max(if(starts_session, created_at, toDateTime64(0, 3, 'UTC'))) over device_timeline
            as session_started_at,
        lower(hex(sipHash64(project_id, device_id, session_started_at))) as session_id

    from session_starts
    window device_timeline as (
        partition by project_id, device_id
        order by created_at, event_id
        rows between unbounded preceding and current row
    )

)

select * from sessionized
