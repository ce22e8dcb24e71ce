-- default incremental strategy with a unique key: the latest row per id wins
{{ config(materialized='incremental', unique_key='id', engine='MergeTree()', order_by='id') }}
select id, argMax(name, batch) as name, max(batch) as last_batch
from {{ ref('people') }}
where batch <= {{ var('batch') }}
{% if is_incremental() %}
  and id in (select id from {{ ref('people') }} where batch = {{ var('batch') }})
{% endif %}
group by id
