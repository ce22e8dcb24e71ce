{#-
    What the dashboards read to be current: the marts hold what the last dbt run took, the
    `*_current` views add what was stored since. Every view splits at the same point, the
    cutoff: the newest received_at the incremental marts have taken (never later than now),
    minus `reprocess_minutes` for rows the collector had received but not yet inserted when
    that run read them. stg_events holds every counted event created before the cutoff; the
    events created after it are read from the raw rows at query time (stg_event_copies).
    Any earlier cutoff gives the same rows, only more slowly, so a mart built a moment after
    stg_events in the same run cannot make a view miss or repeat an event.
-#}

{% macro current_cutoff() -%}
    (
        select maxIf(last_received_at, last_received_at <= now64(3))
            - toIntervalMinute({{ var('reprocess_minutes') }})
        from {{ ref('daily_visitor_states') }}
    )
{%- endmacro %}


{% macro open_day(project_id='project_id') -%}
    {#- The first project day a per-day mart may lack events of: the day of the cutoff. -#}
    {{ in_project_timezone('toDate', current_cutoff(), project_id) }}
{%- endmacro %}


{% macro visitor_state_columns() -%}
    {#-
        Per-day partial states of the distinct visitors and the page views: a roaring bitmap of
        the day's device numbers (models/intermediate/int_device_numbers.sql), which
        groupBitmapMerge over several days turns into the distinct devices of those days
        together, several times faster than merging hash sets (docs/decisions/0040).
    -#}
    groupBitmapState(toUInt64(device_number)) as visitors_state,
    countIf(is_pageview) as pageviews
{%- endmacro %}


{% macro device_key(project_id='project_id', device_id='device_id') -%}
    {#-
        The key int_device_numbers is looked up by: a 64-bit hash of the project and device,
        several times cheaper to join on than the two strings (docs/decisions/0040). Two
        devices whose keys collide (probability ~n^2/2^65) share a number and count as one,
        as they did when the states were hash sets of cityHash64(device_id).
    -#}
    cityHash64({{ project_id }}, {{ device_id }})
{%- endmacro %}


{% macro numbered(relation, events_first=true) -%}
    {#-
        `relation`'s rows (with device_key) and their device_number. A device not numbered yet
        (new since the last dbt run: only the current views meet one) counts by its device_key
        with the top bit set, above every number, so it never meets a numbered device (and the
        device id strings need not be read).
        `events_first`: the rows are the join's probe side and the numbers its hash table (a
        full build's millions of events); otherwise the numbers are read once and the rows
        hashed (an incremental batch, a query's open days), so the cost does not grow with
        every device ever numbered. ANY: were a key ever numbered twice (two dbt runs at once),
        each event still joins one number, so no page view is counted twice.
    -#}
    {%- set numbers = '(select device_key, device_number from ' ~ ref('int_device_numbers') ~ ')' %}
    select
        events.*,
        if(device_numbers.device_number = 0,
           bitOr(events.device_key, bitShiftLeft(toUInt64(1), 63)),
           device_numbers.device_number) as device_number
    {%- if events_first %}
    from {{ relation }} as events
    any left join {{ numbers }} as device_numbers using (device_key)
    {%- else %}
    from {{ numbers }} as device_numbers
    any right join {{ relation }} as events using (device_key)
    {%- endif %}
{%- endmacro %}


{% macro source_keys(keys, unnest, unnest_from) -%}
    {#- The columns an event row carries for keyed_states(): the keys, or what `unnest` reads -#}
    {%- for column in (unnest_from if unnest else keys) %}{{ column }}, {% endfor %}
{%- endmacro %}


{% macro keyed_states(relation, keys, unnest, unnest_from, where=none, received=true) -%}
    {#-
        `relation`'s numbered event rows (source_keys(), device_number, is_pageview and, with
        `received`, received_at) matching `where`, as visitor_state_columns() per project, day
        and `keys`. With `unnest` (an array of tuples, an expression of the columns
        `unnest_from`, one element per key value) the rows are first aggregated per day and
        distinct `unnest_from` values, then those states unnested and merged: several times
        fewer rows to group by key strings than unnesting every event (docs/decisions/0042).
    -#}
    {%- set last_received = ', max(received_at) as last_received_at' if received else '' %}
    {%- set grouped -%}
    select
        project_id,
        day,
        {{ source_keys(keys, unnest, unnest_from) }}{{ visitor_state_columns() }}{{ last_received }}
    from {{ relation }}
    {%- if where %}
    where {{ where }}
    {%- endif %}
    group by project_id, day{% for column in (unnest_from if unnest else keys) %}, {{ column }}{% endfor %}
    {%- endset %}
    {%- if unnest %}
    select
        project_id,
        day,
        {%- for key in keys %}
        key_values.{{ loop.index }} as {{ key }},
        {%- endfor %}
        groupBitmapMergeState(visitors_state) as visitors_state,
        sum(pageviews) as pageviews{{ ', max(last_received_at) as last_received_at' if received else '' }}
    from ({{ grouped }})
    array join {{ unnest }} as key_values
    group by project_id, day, {{ keys | join(', ') }}
    {%- else %}
    {{ grouped }}
    {%- endif %}
{%- endmacro %}


{% macro event_field_values() -%}
    {#-
        (field, value) of every event-level filter field an event has, named as the dashboards'
        filters name them (queries/filters.py: `event`, `path`, `prop:<key>`): its name, its
        path and each of its properties. Unnested by daily_event_value_states.
    -#}
    arrayConcat(
        [('event', toString(event_name)), ('path', path)],
        arrayMap((k, v) -> (concat('prop:', k), v), mapKeys(properties), mapValues(properties)))
{%- endmacro %}


{% macro day_states(keys=[], where=none, unnest=none, unnest_from=[]) -%}
    {#-
        The body of a per-day state mart: project_id, day, `keys`, visitor_state_columns() and
        the newest received_at, over the events matching `where`. daily_visitor_states and
        daily_page_states are this one query with different keys; current_days() reads them
        with the same keys. `unnest` and `unnest_from` give an event one row per key value
        (daily_event_value_states; keyed_states()). Incremental runs recompute the affected
        days (macros/affected_days.sql).
    -#}
    {%- set conditions = [where] if where else [] %}
    {%- if is_incremental() %}
        {%- do conditions.append(where_affected_day('day', 'created_at')) %}
    {%- endif %}

with

{% if is_incremental() %}
affected_days as ({{ affected_days() }}),
{% endif %}

events as (

    select
        project_id,
        day,
        {{ source_keys(keys, unnest, unnest_from) }}device_key,
        is_pageview,
        received_at
    from {{ ref('int_events_localized') }}
    {%- if conditions %}
    where {{ conditions | join('\n        and ') }}
    {%- endif %}

),

-- every staged device has a number: int_device_numbers is built first
numbered as ({{ numbered('events', events_first=not is_incremental()) }}),

final as ({{ keyed_states('numbered', keys, unnest, unnest_from) }})

select * from final
{%- endmacro %}


{% macro current_days(mart, keys=[], where=none, unnest=none, unnest_from=[]) -%}
    {#-
        A per-day state mart (`mart`: project_id, day, `keys`, visitor_state_columns()) made
        current: its rows of the days before the open day, and for the open days the same
        columns computed from events_current, restricted by `where` (and unnested as
        day_states does), their devices numbered by numbered().
    -#}
    {%- set key_list = (keys | join(', ') ~ ', ') if keys else '' %}

with

closed_days as (

    select project_id, day, {{ key_list }}visitors_state, pageviews
    from {{ mart }}
    where day < {{ open_day() }}

),

open_events as (

    select
        project_id,
        {{ in_project_timezone('toDate', 'created_at') }} as day,
        {{ source_keys(keys, unnest, unnest_from) }}device_key,
        is_pageview
    from {{ ref('events_current') }}
    -- a project day starts less than a day before any instant of it
    where created_at >= {{ current_cutoff() }} - toIntervalDay(1)
    {%- if where %}
        and {{ where }}
    {%- endif %}

),

open_numbered as ({{ numbered('open_events', events_first=false) }}),

open_days as ({{ keyed_states('open_numbered', keys, unnest, unnest_from,
                              where='day >= ' ~ open_day(), received=false) }}),

final as (

    select * from closed_days
    union all
    select * from open_days

)

select * from final
{%- endmacro %}
