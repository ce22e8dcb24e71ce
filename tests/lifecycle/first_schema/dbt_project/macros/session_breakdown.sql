{#-
    A per-day breakdown mart over the sessions mart: one row per project, day and value of
    `dimensions` (session attributes, i.e. those of the session's first event or its entry /
    exit page), with the daily figures of metrics.md computed over the sessions that started
    that day with that value. `where` narrows the sessions (e.g. only those with page views).

    A breakdown mart is a file of three lines:  {{ session_breakdown(['browser']) }}
-#}

{% macro session_breakdown(dimensions, where=none) -%}
{{
    config(
        unique_key='project_id, day',
        order_by='(project_id, day, ' ~ dimensions | join(', ') ~ ')',
    )
}}

with

{% if is_incremental() %}
affected_days as ({{ affected_days() }}),
{% endif %}

started_sessions as (

    select * from {{ ref('sessions') }}
    where true
    {%- if where %}
        and {{ where }}
    {%- endif %}
    {%- if is_incremental() %}
        and {{ where_affected_day('day') }}
    {%- endif %}

),

final as (

    select
        project_id,
        day,
        {%- for dimension in dimensions %}
        {{ dimension }},
        {%- endfor %}
        uniqExact(device_id) as visitors,
        count() as sessions,
        sum(started_sessions.pageviews) as pageviews,
        countIf(is_bounce) / sessions as bounce_rate,
        toFloat64(avg(started_sessions.duration_s)) as avg_session_duration_s,
        pageviews / sessions as views_per_session,
        max(last_received_at) as last_received_at

    from started_sessions
    group by project_id, day, {{ dimensions | join(', ') }}

)

select * from final
{%- endmacro %}
