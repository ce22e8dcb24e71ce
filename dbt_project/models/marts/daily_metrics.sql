{#- on_schema_change: the columns are checked in macros/delete_insert.sql, more cheaply -#}
{{
    config(
        small_batches=true,
        on_schema_change=('fail' if target.name == 'cluster' else 'ignore'),
        unique_key='project_id, day',
        order_by='(project_id, day)',
    )
}}

with

{% if is_incremental() %}
affected_days as ({{ affected_days() }}),
{% endif %}

events as (

    select project_id, day, device_id, is_pageview, received_at
    from {{ ref('int_events_localized') }}
    {% if is_incremental() %}
    where {{ where_affected_day('day', 'created_at') }}
    {% endif %}

),

sessions as (

    select project_id, day, is_bounce, duration_s
    from {{ ref('sessions') }}
    {% if is_incremental() %}
    where {{ where_affected_day('day') }}
    {% endif %}

),

events_per_day as (

    select
        project_id,
        day,
        uniqExact(device_id) as visitors,
        countIf(is_pageview) as pageviews,
        count() as events,
        max(received_at) as last_received_at
    from events
    group by project_id, day

),

sessions_per_day as (

    select
        project_id,
        day,
        count() as sessions,
        countIf(is_bounce) as bounces,
        sum(duration_s) as total_duration_s
    from sessions
    group by project_id, day

),

final as (

    select
        events_per_day.project_id as project_id,
        events_per_day.day as day,
        visitors,
        -- a day whose events all belong to a session started the day before has no sessions
        sessions_per_day.sessions as sessions,
        pageviews,
        events,
        if(sessions = 0, 0, bounces / sessions) as bounce_rate,
        if(sessions = 0, 0, toFloat64(total_duration_s) / sessions) as avg_session_duration_s,
        if(sessions = 0, 0, pageviews / sessions) as views_per_session,
        last_received_at

    from events_per_day
    left join sessions_per_day
        on events_per_day.project_id = sessions_per_day.project_id
        and events_per_day.day = sessions_per_day.day

)

select * from final
