{#-
    Partial distinct-visitor states and page views per URL path and project day: the top-pages
    tile merges a range's days per path (uniqExactMerge) into exact distinct visitors of the
    range. Hashing as in daily_visitor_states.
-#}
-- depends_on: {{ ref('sessions') }}
{{
    config(
        unique_key='project_id, day',
        order_by='(project_id, day, path)',
    )
}}

with

{% if is_incremental() %}
affected_days as ({{ affected_days() }}),
{% endif %}

pageviews as (

    select project_id, day, path, device_id, received_at
    from {{ ref('int_events_localized') }}
    where is_pageview
    {%- if is_incremental() %}
        and {{ where_affected_day('day', 'created_at') }}
    {%- endif %}

),

final as (

    select
        project_id,
        day,
        path,
        uniqExactState(cityHash64(device_id)) as visitors_state,
        count() as pageviews,
        max(received_at) as last_received_at

    from pageviews
    group by project_id, day, path

)

select * from final
