-- depends_on: {{ ref('stg_profiles') }}
{{
    config(
        unique_key='profile_id',
        order_by='(project_id, profile_id)',
    )
}}

with

{% if is_incremental() %}
affected_profiles as (

    -- profiles with calls or events received since the last run (by profile id alone, in
    -- every project: a plain string set is cheaper to probe than (project, profile) pairs)
    select profile_id from {{ ref('stg_profiles') }}
    where received_at > {{ incremental_watermark() }}

    union distinct

    select profile_id from {{ ref('stg_events') }}
    where profile_id != '' and received_at > {{ incremental_watermark() }}

),
{% endif %}

traits as (

    select * from {{ ref('int_profile_traits') }}
    {%- if is_incremental() %}
    where profile_id in (select profile_id from affected_profiles)
    {%- endif %}

),

event_stats as (

    select
        project_id,
        profile_id,
        -- nullable, so a profile known only from identify calls has no first / last seen
        cast(min(created_at), 'Nullable(DateTime64(3, \'UTC\'))') as first_seen_at,
        cast(max(created_at), 'Nullable(DateTime64(3, \'UTC\'))') as last_seen_at,
        count() as events,
        max(received_at) as last_received_at
    from {{ ref('stg_events') }}
    where profile_id != ''
    {%- if is_incremental() %}
        and profile_id in (select profile_id from affected_profiles)
    {%- endif %}
    group by project_id, profile_id

),

final as (

    select
        project_id,
        profile_id,
        traits.first_name as first_name,
        traits.last_name as last_name,
        traits.email as email,
        traits.avatar as avatar,
        traits.properties as properties,
        event_stats.first_seen_at as first_seen_at,
        event_stats.last_seen_at as last_seen_at,
        event_stats.events as events,
        greatest(traits.last_received_at, event_stats.last_received_at) as last_received_at
    from traits
    full outer join event_stats using (project_id, profile_id)

)

select * from final
