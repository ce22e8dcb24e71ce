{{ config(materialized='table', engine='MergeTree()', order_by='(id, batch)') }}
select id, batch, name, amount from {{ ref('people_view') }}
