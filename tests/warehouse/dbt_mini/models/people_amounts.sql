-- delete+insert strategy: rows of the ids in this batch are replaced
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='id', engine='MergeTree()', order_by='id') }}
select id, sum(amount) as total_amount from {{ ref('people') }}
where batch <= {{ var('batch') }}
{% if is_incremental() %}
  and id in (select id from {{ ref('people') }} where batch = {{ var('batch') }})
{% endif %}
group by id
