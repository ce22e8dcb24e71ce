{#- daily_event_value_states, current: the open days computed from events_current at query time. -#}
-- depends_on: {{ ref('stg_projects') }}
{{ config(materialized='view') }}

{{ current_days(ref('daily_event_value_states'), keys=['field', 'value'],
                unnest=event_field_values(), unnest_from=['event_name', 'path', 'properties']) }}
