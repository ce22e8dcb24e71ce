{#- One row per live project with its time zone (an unknown zone name falls back to UTC). -#}

with

projects as (

    select * from {{ source('trackhouse', 'projects') }} final
    where is_deleted = 0

),

renamed as (

    select
        id as project_id,
        name as project_name,
        domain,
        if(
            timezone in (select time_zone from system.time_zones),
            toString(timezone),
            'UTC'
        ) as timezone,
        created_at,
        updated_at

    from projects

)

select * from renamed
