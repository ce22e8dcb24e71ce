{% macro should_full_refresh() -%}
    {#-
        dbt's own rule (the --full-refresh flag, or the model's full_refresh config), and also:
        an incremental model whose stored table lacks a column its yml declares a type for
        (`data_type`), or stores it with another type, is rebuilt in full. An upgrade that adds
        or changes such a column (stg_events' device_key, docs/decisions/0041; the visitor
        states' bitmaps, 0040) then rebuilds that model at the next scheduled run instead of
        failing every run until someone runs a full refresh. Overrides
        dbt's macro of the same name, which is_incremental() and the materializations call.
    -#}
    {%- set configured = dbt.should_full_refresh() %}
    {%- if configured or not execute %}
        {{- return(configured) }}
    {%- endif %}
    {{- return(declared_types_changed()) }}
{%- endmacro %}


{% macro declared_types_changed() -%}
    {%- set declared = {} %}
    {%- for name, column in model.get('columns', {}).items() %}
        {%- if column.get('data_type') %}
            {%- do declared.update({name: column['data_type']}) %}
        {%- endif %}
    {%- endfor %}
    {%- if not declared or config.get('materialized') != 'incremental' %}
        {{- return(false) }}
    {%- endif %}
    {%- set relation = adapter.get_relation(this.database, this.schema, this.identifier) %}
    {%- if relation is none %}
        {{- return(false) }}
    {%- endif %}
    {%- set stored = {} %}
    {%- for column in adapter.get_columns_in_relation(relation) %}
        {%- do stored.update({column.name: column.dtype}) %}
    {%- endfor %}
    {%- for name, data_type in declared.items() %}
        {%- if stored.get(name) != data_type %}
            {{- log('The stored type of ' ~ relation ~ '.' ~ name ~ ' is '
                   ~ stored.get(name, 'missing') ~ ', the model declares ' ~ data_type
                   ~ ': rebuilding it in full.', info=true) }}
            {{- return(true) }}
        {%- endif %}
    {%- endfor %}
    {{- return(false) }}
{%- endmacro %}
