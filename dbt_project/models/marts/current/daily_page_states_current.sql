{#- daily_page_states, current: its rows plus the events created since its cutoff (ADR 0043). -#}
-- depends_on: {{ ref('stg_projects') }}
{{ config(materialized='view') }}

{{ current_days(ref('daily_page_states'), keys=['path'], where='is_pageview') }}
