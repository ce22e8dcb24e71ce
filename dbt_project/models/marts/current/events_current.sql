{#-
    Every counted event, current to the last stored batch: what the dashboards read for event
    figures under filters, custom events, ad-hoc funnels, profile timelines and the realtime
    page. The events created before the cutoff (macros/current_days.sql) come from
    stg_events; those created since, which the next dbt run will take, from the raw rows
    under staging's rules, the first-received copy of each id (as stg_events keeps it).
-#}
{{ config(materialized='view') }}

with

taken as (

    select * from {{ ref('stg_events') }}
    where created_at < {{ current_cutoff() }}

),

not_taken_yet as (

    {{ events_created_since(current_cutoff()) }}

),

final as (

    select * from taken
    union all
    select * from not_taken_yet

)

select * from final
