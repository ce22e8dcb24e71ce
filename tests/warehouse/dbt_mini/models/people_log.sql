-- append strategy: every batch adds its rows once
{{ config(materialized='incremental', incremental_strategy='append', engine='MergeTree()', order_by='(batch, id)') }}
select id, batch, name, amount from {{ ref('people') }}
{% if is_incremental() %}
where batch = {{ var('batch') }}
{% else %}
where batch <= {{ var('batch') }}
{% endif %}
