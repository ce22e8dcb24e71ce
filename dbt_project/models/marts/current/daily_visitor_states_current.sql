{#- daily_visitor_states, current: its rows plus the events created since its cutoff (ADR 0043). -#}
-- depends_on: {{ ref('stg_projects') }}
{{ config(materialized='view') }}

{{ current_days(ref('daily_visitor_states')) }}
