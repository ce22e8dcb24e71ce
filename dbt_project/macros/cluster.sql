{#-
    Placement of the device-level models on the `cluster` target (docs/decisions/0019): a
    Distributed table over ReplicatedMergeTree shards, sharded by var('device_sharding_key') like
    the raw events, so a device's staged events, days and sessions live on its events' shard.
    Every other table has a full replica on each node (dbt_project.yml). On one server: the
    materialization given, on MergeTree. Models always read the Distributed (or full) tables,
    never a shard's local table, so dbt may run against any node.
-#}
{% macro device_sharded(materialized) -%}
    {{ return('distributed_' ~ materialized if target.name == 'cluster' else materialized) }}
{%- endmacro %}

{% macro device_sharded_engine() -%}
    {{ return("ReplicatedMergeTree('/clickhouse/tables/{uuid}/{shard}', '{replica}')"
              if target.name == 'cluster' else 'MergeTree') }}
{%- endmacro %}
