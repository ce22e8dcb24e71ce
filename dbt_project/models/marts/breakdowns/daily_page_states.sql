{#-
    Partial distinct-visitor states and page views per URL path and project day: the top-pages
    tile merges a range's days per path (uniqExactMerge) into exact distinct visitors of the
    range. State columns as in daily_visitor_states; the dashboards read it through
    daily_page_states_current.
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

    select project_id, day, path, device_id, is_pageview, received_at
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
        {{ visitor_state_columns() }},
        max(received_at) as last_received_at

    from pageviews
    group by project_id, day, path

)

select * from final
