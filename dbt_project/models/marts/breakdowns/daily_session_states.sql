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
    )
}}

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
        last_received_at,
        [
            {%- for name, expression in var('session_dimensions').items() %}
            ('{{ name }}', toString({{ expression }})){{ ',' if not loop.last }}
            {%- endfor %}
        ] as dimension_values
    from {{ ref('sessions') }}
    {%- if is_incremental() %}
    where {{ where_affected_day('day') }}
    {%- endif %}

),

-- every session's device has a number: int_device_numbers numbers every staged device
numbered as ({{ numbered('sessions', events_first=not is_incremental()) }}),

final as (

    select
        project_id,
        day,
        dimension_value.1 as dimension,
        dimension_value.2 as value,
        groupBitmapState(toUInt64(device_number)) as visitors_state,
        count() as sessions,
        countIf(is_bounce) as bounces,
        max(last_received_at) as last_received_at
    from numbered
    array join dimension_values as dimension_value
    group by project_id, day, dimension, value

)

select * from final
