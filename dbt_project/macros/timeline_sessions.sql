{#-
    Sessions of whole device timelines in one pass, for full refreshes: docs/decisions/0025.
-#}

{% macro timeline_sessions(events, columns) -%}
    {#-
        One row per session of the devices in `events` (a relation holding whole device
        timelines, sorted by project, device and time like stg_events): project_id, device_id,
        session_id and `session_events`, the session's events in time order as tuples
        (created_at, event_id, <columns>...). The rule and the ids are int_events_sessionized's
        (docs/metrics.md#sessions); one aggregation per device, which reads `events` in its sort
        order (optimize_aggregation_in_order), replaces its two window passes and the group by
        session.
    -#}
    select
        project_id,
        device_id,
        {{ session_id('session_events[1].1') }} as session_id,
        session_events
    from (

        select
            project_id,
            device_id,
            arraySort(event -> (event.1, event.2),
                      groupArray((created_at, event_id, {{ columns | join(', ') }}))) as timeline
        from {{ events }}
        group by project_id, device_id

    )
    -- a session starts at the device's first event and after every gap of more than
    -- session_gap_minutes
    array join arraySplit(
        (event, gap_ms) -> gap_ms > {{ session_gap_ms() }},
        timeline,
        arrayDifference(arrayMap(event -> toUnixTimestamp64Milli(event.1), timeline))
    ) as session_events
{%- endmacro %}


{% macro sorted_contents(distinct_events) -%}
    {#- A session's distinct (event name, path, properties) tuples, sorted so that a rebuild by
        either path of `sessions` gives the same arrays. -#}
    arraySort(e -> (e.1, e.2, toString(e.3)), {{ distinct_events }})
{%- endmacro %}
