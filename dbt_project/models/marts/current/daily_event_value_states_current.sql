{#- daily_event_value_states, current: its rows plus the events created since its cutoff (ADR 0043). -#}
-- depends_on: {{ ref('stg_projects') }}
{{ config(materialized='view') }}

{{ current_days(ref('daily_event_value_states'), keys=['field', 'value'],
                unnest=event_field_values(), unnest_from=['event_name', 'path', 'properties']) }}
