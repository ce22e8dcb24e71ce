{#-
    Every stored copy of every counted raw event, with stg_events' columns: staging's rules
    (macros/staging_rules.sql) except the de-duplication, which needs the rows to be bounded
    first. A view, so that it is current: events_current reads the copies created since the
    marts' last run from here and keeps the first-received copy of each id, and its time
    bound reaches the raw table's primary key through this view.
-#}

with

raw_events as (

    select * from {{ source('trackhouse', 'events') }}
    where {{ counted_raw_event('now64(3)') }}

),

renamed as (

    select
{{ staged_event_columns() }}

    from raw_events

)

select * from renamed
