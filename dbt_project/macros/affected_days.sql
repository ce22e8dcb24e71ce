{#-
    What an incremental run recomputes. int_device_days rewrites every row of the affected
    devices (the session marts recompute spans of them: macros/session_spans.sql); the per-day
    marts recompute whole (project, day) rows of the affected days.
-#}

{% macro affected_devices() -%}
    {#-
        Devices with events received since this model's last run, and those an erasure listed
        (macros/recompute.sql). By device id alone, in every project: a plain string set is
        several times cheaper to probe than (project, device) pairs, and the few devices
        recomputed in other projects as well come out the same.
    -#}
    select device_id from {{ ref('int_events_localized') }}
    where received_at > {{ incremental_watermark() }}
    union distinct
    {{ recomputed_devices() }}
{%- endmacro %}


{#-
    Incremental runs of the per-day marts recompute whole (project, day) rows: the days touched
    by sessions that gained events since the mart's last run. A session that gained events may
    have absorbed sessions that started later (a late event closing a gap), so every day the
    session spans counts, not only the days of the new events.
-#}

{% macro affected_days() -%}
    select distinct
        project_id,
        arrayJoin(arrayMap(offset -> day + offset, range(toUInt32(end_day - day) + 1))) as day
    from {{ ref('sessions') }}
    where last_received_at > {{ incremental_watermark() }}

    union distinct

    -- days an erasure changed (macros/recompute.sql)
    {{ recomputed_days() }}
{%- endmacro %}


{#-
    A per-day mart of events (day_states(): daily_event_value_states, which the visitor and page
    states roll up) changes only on the days of the events that changed: those received since
    its last run and those an erasure changed. Unlike affected_days() it does not wait for the
    sessions mart, so the mart builds beside it.
-#}

{% macro affected_event_days() -%}
    select distinct project_id, day from {{ ref('int_events_localized') }}
    where received_at > {{ incremental_watermark() }}

    union distinct

    {{ recomputed_days() }}
{%- endmacro %}


{% macro where_affected_day(day_column='day', timestamp_column=none) -%}
    {#-
        A filter keeping the rows of the affected days. With `timestamp_column` it also bounds
        that UTC timestamp (project days lie within 14 hours of UTC), so the scan skips old
        partitions before the day expression is evaluated. The bounds are DateTime64: a Date
        (up to 2149) converted to DateTime (up to 2106) would wrap around.
    -#}
    {%- if timestamp_column %}
    {{ timestamp_column }} >= (
        select toDateTime64(min(day), 3, 'UTC') - toIntervalDay(1) from affected_days)
    and {{ timestamp_column }} < (
        select toDateTime64(max(day), 3, 'UTC') + toIntervalDay(2) from affected_days)
    and
    {%- endif %}
    ({{ 'project_id' }}, {{ day_column }}) in (select project_id, day from affected_days)
{%- endmacro %}
