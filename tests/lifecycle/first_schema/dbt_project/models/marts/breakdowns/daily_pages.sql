{#- Page views and visitors per URL path and project day (every page view, not only entries). -#}
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
        uniqExact(device_id) as visitors,
        count() as pageviews,
        max(received_at) as last_received_at

    from pageviews
    group by project_id, day, path

)

select * from final
