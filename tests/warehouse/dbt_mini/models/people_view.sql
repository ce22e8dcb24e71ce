{{ config(materialized='view') }}
select id, batch, name, amount from {{ ref('people') }}
