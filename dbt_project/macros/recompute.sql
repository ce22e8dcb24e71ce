{#-
    Rows an erasure listed for recomputing (raw table `recompute`, lifecycle/privacy.py): the
    incremental models treat them as if they had received new events, so the rows an erasure
    deleted from the marts come back computed from what is left. Empty outside an erasure.
-#}

{% macro recomputed_devices() -%}
    select value from {{ source('trackhouse', 'recompute') }} where kind = 'device'
{%- endmacro %}


{% macro recomputed_profiles() -%}
    select value from {{ source('trackhouse', 'recompute') }} where kind = 'profile'
{%- endmacro %}


{% macro recomputed_days() -%}
    select project_id, day from {{ source('trackhouse', 'recompute') }} where kind = 'day'
{%- endmacro %}
