{#- daily_page_states, current: the open days computed from events_current at query time. -#}
-- depends_on: {{ ref('stg_projects') }}
{{ config(materialized='view') }}

{{ current_days(ref('daily_page_states'), keys=['path'], where='is_pageview') }}
