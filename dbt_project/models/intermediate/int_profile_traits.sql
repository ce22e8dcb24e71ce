{#-
    One row per profile that received identify / increment / decrement calls, with its traits
    (docs/metrics.md#profiles):
    - first_name, last_name, email, avatar: the latest value of each field across the identify
      calls that carry it (a call without a field keeps the earlier value);
    - properties: merged per key, the latest identify call carrying a key wins;
    - counters: an increment / decrement adds its value on top of the latest identified value
      of its property (a non-numeric or missing value counts as 0); increments made before that
      identify call were overwritten by it and do not count.
-#}

with

calls as (

    select * from {{ ref('stg_profiles') }}

),

fields as (

    select
        project_id,
        profile_id,
        argMaxIf(first_name, (updated_at, received_at), first_name is not null) as first_name,
        argMaxIf(last_name, (updated_at, received_at), last_name is not null) as last_name,
        argMaxIf(email, (updated_at, received_at), email is not null) as email,
        argMaxIf(avatar, (updated_at, received_at), avatar is not null) as avatar,
        max(received_at) as last_received_at
    from calls
    group by project_id, profile_id

),

property_calls as (

    select
        project_id, profile_id, key, value, updated_at, received_at,
        true as is_identify, toFloat64(0) as signed_delta
    from calls
    array join mapKeys(properties) as key, mapValues(properties) as value
    where call_kind = 'identify'

    union all

    select
        project_id, profile_id, property as key, '' as value, updated_at, received_at,
        false as is_identify, signed_delta
    from calls
    where call_kind in ('increment', 'decrement')

),

property_calls_with_identify as (

    select
        *,
        -- when the latest identify call set this key (1970 when none did)
        maxIf(updated_at, is_identify) over profile_key as identified_at
    from property_calls
    window profile_key as (partition by project_id, profile_id, key)

),

property_values as (

    select
        project_id,
        profile_id,
        key,
        argMaxIf(value, (updated_at, received_at), is_identify) as identified_value,
        countIf(not is_identify and updated_at > identified_at) as later_counts,
        sumIf(signed_delta, not is_identify and updated_at > identified_at) as counted
    from property_calls_with_identify
    group by project_id, profile_id, key

),

properties as (

    select
        project_id,
        profile_id,
        mapFromArrays(
            groupArray(key),
            groupArray(if(
                later_counts > 0,
                toString(toFloat64OrZero(identified_value) + counted),
                identified_value
            ))
        ) as properties
    from property_values
    group by project_id, profile_id

),

final as (

    select
        fields.project_id as project_id,
        fields.profile_id as profile_id,
        first_name,
        last_name,
        email,
        avatar,
        properties.properties as properties,
        last_received_at
    from fields
    left join properties
        on fields.project_id = properties.project_id
        and fields.profile_id = properties.profile_id

)

select * from final
