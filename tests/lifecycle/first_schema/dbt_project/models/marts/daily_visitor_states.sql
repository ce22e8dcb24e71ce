{#-
    Partial distinct-visitor states per project day: the dashboards merge the states of a range's
    days (uniqExactMerge) into the exact distinct devices of the whole range — what a sum of
    daily visitors cannot give — without rescanning the raw events of closed days. The state
    hashes the device id with cityHash64, as app/queries/base.py's DISTINCT_DEVICES does, so
    states merge with those computed over raw events.
-#}
-- depends_on: {{ ref('sessions') }}
{{
    config(
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

final as (

    select
        project_id,
        day,
        uniqExactState(cityHash64(device_id)) as visitors_state,
        countIf(is_pageview) as pageviews,
        max(received_at) as last_received_at

    from events
    group by project_id, day

)

select * from final
