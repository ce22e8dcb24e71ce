{#-
    Per project day, session dimension (var session_dimensions: entry path, referrer, country,
    browser, ...) and value: the bitmap of the sessions' device numbers, the sessions and their
    bounces. The overview's unfiltered session breakdowns merge a range's rows per value
    (groupBitmapMerge) into exact distinct visitors instead of grouping every session of the
    range (docs/decisions/0045). Sessions are as current as the sessions mart, so no current view.
-#}
{#- index_granularity_bytes: as daily_page_states, so a range's read skips the other days -#}
{#- on_schema_change: the columns are checked in macros/delete_insert.sql, more cheaply -#}
{{
    config(
        small_batches=true,
        on_schema_change=('fail' if target.name == 'cluster' else 'ignore'),
        unique_key='project_id, day',
        order_by='(project_id, day, dimension, value)',
        settings={'index_granularity_bytes': 1048576},
        query_settings={'force_grouping_standard_compatibility': 1},
    )
}}
{%- set dimensions = var('session_dimensions') %}
{%- set names = dimensions | list %}

with

{% if is_incremental() %}
affected_days as ({{ affected_days() }}),
{% endif %}

sessions as (

    select
        project_id,
        day,
        device_key,
        is_bounce,
        last_received_at
        {%- for name, expression in dimensions.items() %},
        toString({{ expression }}) as value_{{ name }}
        {%- endfor %}
    from {{ ref('sessions') }}
    {%- if is_incremental() %}
    where {{ where_affected_day('day') }}
    {%- endif %}

),

-- every session's device has a number: int_device_numbers numbers every staged device
numbered as ({{ numbered('sessions', events_first=not is_incremental()) }}),

-- One grouping set per dimension: each set hashes one string per session, where unnesting
-- the dimensions first would hash (dimension, value) pairs of 13 rows per session
-- (docs/decisions/0046). grouping(c) = 0: c is a key of the row's set.
final as (

    select
        project_id,
        day,
        multiIf(
            {%- for name in names[:-1] %}
            grouping(value_{{ name }}) = 0, '{{ name }}',
            {%- endfor %}
            '{{ names[-1] }}'
        ) as dimension,
        multiIf(
            {%- for name in names[:-1] %}
            grouping(value_{{ name }}) = 0, value_{{ name }},
            {%- endfor %}
            value_{{ names[-1] }}
        ) as value,
        groupBitmapState(toUInt64(device_number)) as visitors_state,
        count() as sessions,
        countIf(is_bounce) as bounces,
        max(last_received_at) as last_received_at
    from numbered
    group by grouping sets (
        {%- for name in names %}
        (project_id, day, value_{{ name }}){{ ',' if not loop.last }}
        {%- endfor %}
    )

)

select * from final
