{#-
    Profile calls (identify / increment / decrement), one row per call id. The collector also
    stores `group` / `assign_group` calls in the same raw table; they are not profile traits and
    stay out of staging until a groups model reads them.
-#}

with

profile_calls as (

    select * from {{ source('trackhouse', 'profiles') }}
    where kind in ('identify', 'increment', 'decrement')
    -- a retried call is stored twice until the table merges; keep the first received copy
    order by received_at
    limit 1 by id

),

renamed as (

    select
        id as call_id,
        project_id,
        profile_id,
        toString(kind) as call_kind,
        first_name,
        last_name,
        email,
        avatar,
        properties,
        property,
        -- decrement rows subtract, whatever sign the caller gave the value
        if(kind = 'decrement', -abs(delta), abs(delta)) as signed_delta,
        updated_at,
        received_at

    from profile_calls

)

select * from renamed
