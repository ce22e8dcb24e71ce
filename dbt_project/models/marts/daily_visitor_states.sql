{#-
    Partial distinct-visitor states per project day: the dashboards merge the states of a range's
    days (groupBitmapMerge) into the exact distinct devices of the whole range — what a sum of
    daily visitors cannot give — without rescanning the events of closed days; they read this
    mart through daily_visitor_states_current, which adds the days it has not caught up with.

    Rolled up from daily_event_value_states' `event` rows instead of the events: every event has
    exactly one name, so a day's name rows hold each of its events once, and their bitmaps merged
    are the day's devices, their page views summed the day's page views. Each row keeps the
    cutoff of the build that wrote its day there (docs/decisions/0047).
-#}
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
-- the days daily_event_value_states rewrote since this mart's last build (every build that
-- takes new events moves the cutoff it stamps them with), and the days an erasure listed
changed_days as (

    select distinct project_id, day from {{ ref('daily_event_value_states') }}
    where field = 'event' and cutoff > {{ mart_cutoff(this) }}

    union distinct

    {{ recomputed_days() }}

),
{% endif %}

event_name_states as (

    select project_id, day, visitors_state, pageviews, last_received_at, cutoff
    from {{ ref('daily_event_value_states') }}
    where field = 'event'
    {%- if is_incremental() %}
        and (project_id, day) in (select project_id, day from changed_days)
    {%- endif %}

),

final as (

    select
        project_id,
        day,
        groupBitmapMergeState(visitors_state) as visitors_state,
        sum(pageviews) as pageviews,
        max(last_received_at) as last_received_at,
        max(cutoff) as cutoff
    from event_name_states
    group by project_id, day

)

select * from final
