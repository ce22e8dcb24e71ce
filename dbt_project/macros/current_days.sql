{#-
    What the dashboards read to be current: the marts hold what the last dbt run took, the
    `*_current` views add what was stored since. A view splits at a cutoff: a time before
    which stg_events held every counted event when the marts were built (the newest
    received_at it had taken, minus `reprocess_minutes` for rows the collector had received but
    not yet inserted then). The events created before it come from the marts (stg_events), those
    created since from the raw rows at query time (stg_event_copies), the first-received copy of
    each id. For events_current any earlier cutoff gives the same rows, only more slowly.

    The per-day state marts take only the events created before their build's cutoff and store
    it (column `cutoff`), so each view adds to its own mart the raw events created since exactly
    that mart's newest cutoff: a few minutes of rows instead of the open day's (ADR 0043). An
    earlier one would count twice the events between the two.
-#}

{% macro taken_cutoff() -%}
    {#- The cutoff of this build: stg_events' newest received_at (not after the run started). -#}
    (
        select maxIf(received_at, received_at <= {{ run_started() }})
            - toIntervalMinute({{ var('reprocess_minutes') }})
        from {{ ref('stg_events') }}
    )
{%- endmacro %}


{% macro mart_cutoff(mart) -%}
    {#- The cutoff a state mart's rows were cut at: that of its last build. -#}
    (select max(cutoff) from {{ mart }})
{%- endmacro %}


{% macro current_cutoff() -%}
    {#- events_current's cutoff: daily_visitor_states'. -#}
    {{ mart_cutoff(ref('daily_visitor_states')) }}
{%- endmacro %}


{% macro events_created_since(cutoff) -%}
    {#-
        The counted events created at or after `cutoff`, from the raw rows under staging's rules
        (stg_event_copies), the first-received copy of each id (as stg_events keeps it).
        Copies are told apart by project and id: the collector derives every event id from its
        project (collector/identity.py), so no two projects share one, and ClickHouse can then
        push a reader's project condition below the LIMIT BY into the raw table's key; by id
        alone, each query read the open day of every project.
    -#}
    select * from {{ ref('stg_event_copies') }}
    where created_at >= {{ cutoff }}
        -- the day bound reaches the raw table's key (project_id, toDate(created_at)); the
        -- time bound alone prunes only its monthly partitions (8,734 rows read, not 57,886,
        -- at 1 M events)
        and toDate(created_at) >= toDate({{ cutoff }})
    {{ first_received_copy('project_id, event_id') }}
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
        `unnest_from`, one element per key value, reading them as `day_groups`) the rows are
        first aggregated per day and distinct `unnest_from` values, then those states unnested
        and merged: several times fewer rows to group by key strings than unnesting every event
        (docs/decisions/0042).
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
    from ({{ grouped }}) as day_groups
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
        path and each of its properties; and, for a page view, `page` (its path), which
        daily_page_states rolls up. Unnested by daily_event_value_states, over rows grouped by
        event name, path and properties: a group's events are all page views or none (staging
        derives is_pageview from the name), so the group's page views tell them (qualified:
        keyed_states' own `pageviews` is the sum of the unnested rows).
    -#}
    arrayConcat(
        [('event', toString(event_name)), ('path', path)],
        if(day_groups.pageviews > 0, [('page', path)], []),
        arrayMap((k, v) -> (concat('prop:', k), v), mapKeys(properties), mapValues(properties)))
{%- endmacro %}


{% macro rolled_up_day_states(field, key=none) -%}
    {#-
        A per-day state mart rolled up from daily_event_value_states' rows of one `field`,
        instead of from the events: per project, day and (as `key`) value, or per project and
        day when each event has exactly one value of the field. Incremental runs take the days
        that mart rewrote since this one's build (it stamps them with the newer cutoff of the
        build that took new events) and the days an erasure listed (docs/decisions/0047).
    -#}
    {%- set values = ref('daily_event_value_states') %}
    {#- once: each is_incremental() call queries the stored columns (macros/should_full_refresh.sql) -#}
    {%- set incremental = is_incremental() %}

with

{% if incremental %}
changed_days as (

    select distinct project_id, day from {{ values }}
    where cutoff > {{ mart_cutoff(this) }}

    union distinct

    {{ recomputed_days() }}

),
{% endif %}

field_states as (

    select project_id, day, value, visitors_state, pageviews, last_received_at, cutoff
    from {{ values }}
    where field = '{{ field }}'
    {%- if incremental %}
        and (project_id, day) in (select project_id, day from changed_days)
    {%- endif %}

),

final as (

    select
        project_id,
        day,
        {{- ' value as ' ~ key ~ ',' if key }}
        groupBitmapMergeState(visitors_state) as visitors_state,
        sum(pageviews) as pageviews,
        max(last_received_at) as last_received_at,
        max(cutoff) as cutoff
    from field_states
    group by project_id, day{{ ', value' if key }}

)

select * from final
{%- endmacro %}


{% macro day_states(keys=[], unnest=none, unnest_from=[]) -%}
    {#-
        The body of a per-day state mart of events: project_id, day, `keys`,
        visitor_state_columns(), the newest received_at and the build's cutoff, over the events
        created before that cutoff. daily_event_value_states is this query, with `unnest` and
        `unnest_from` giving an event one row per key value (keyed_states()); the two roll-ups
        (rolled_up_day_states()) keep its columns, and current_days() reads the three with the
        same keys. Incremental runs recompute the days of the events changed since
        (affected_event_days(), macros/affected_days.sql) and those of the events the last build
        left after its cutoff.
    -#}
    {%- set incremental = is_incremental() %}
    {%- set conditions = ['created_at < (select cutoff_at from this_build)'] %}
    {%- if incremental %}
        {%- do conditions.append(where_affected_day('day', 'created_at')) %}
    {%- endif %}

with

-- never before the last build's: an erasure can remove the newest receipt, and the rows not
-- recomputed keep the events before the last cutoff
this_build as (
    select {{ 'greatest(' ~ taken_cutoff() ~ ', ' ~ mart_cutoff(this) ~ ')' if incremental
              else taken_cutoff() }} as cutoff_at
),

{% if incremental %}
affected_days as (

    {{ affected_event_days() }}

    union distinct

    -- the days of the events the last build left to the current views
    select distinct project_id, day from {{ ref('int_events_localized') }}
    where created_at >= {{ mart_cutoff(this) }}

),
{% endif %}

events as (

    select
        project_id,
        day,
        {{ source_keys(keys, unnest, unnest_from) }}device_key,
        is_pageview,
        received_at
    from {{ ref('int_events_localized') }}
    where {{ conditions | join('\n        and ') }}

),

-- every staged device has a number: int_device_numbers is built first
numbered as ({{ numbered('events', events_first=not incremental) }}),

states as ({{ keyed_states('numbered', keys, unnest, unnest_from) }}),

final as (

    select *, (select cutoff_at from this_build) as cutoff
    from states

)

select * from final
{%- endmacro %}


{% macro current_days(mart, keys=[], where=none, unnest=none, unnest_from=[]) -%}
    {#-
        A per-day state mart (`mart`: project_id, day, `keys`, visitor_state_columns()) made
        current: its rows, which hold the events created before its cutoff, and the same
        columns computed from the events created since (events_created_since()), restricted by
        `where` (and unnested as day_states does), their devices numbered by numbered().
    -#}
    {%- set key_list = (keys | join(', ') ~ ', ') if keys else '' %}

with

stored as (

    select project_id, day, {{ key_list }}visitors_state, pageviews
    from {{ mart }}

),

events_since as (

    select
        project_id,
        {{ in_project_timezone('toDate', 'created_at') }} as day,
        {{ source_keys(keys, unnest, unnest_from) }}device_key,
        is_pageview
    from ({{ events_created_since(mart_cutoff(mart)) }})
    {%- if where %}
    where {{ where }}
    {%- endif %}

),

numbered_since as ({{ numbered('events_since', events_first=false) }}),

states_since as ({{ keyed_states('numbered_since', keys, unnest, unnest_from, received=false) }}),

final as (

    select * from stored
    union all
    select * from states_since

)

select * from final
{%- endmacro %}
