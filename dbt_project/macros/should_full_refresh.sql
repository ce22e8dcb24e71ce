{% macro should_full_refresh() -%}
    {#-
        dbt's own rule (the --full-refresh flag, or the model's full_refresh config), and also:
        an incremental model whose stored table no longer has a column type its yml declares
        (`data_type`) is rebuilt in full. An upgrade that changes such a column (the visitor
        states became bitmaps, docs/decisions/0040) then rebuilds that mart at the next
        scheduled run instead of failing every run until someone runs a full refresh. Overrides
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
        {%- if name in stored and stored[name] != data_type %}
            {{- log('The stored type of ' ~ relation ~ '.' ~ name ~ ' is ' ~ stored[name]
                   ~ ', the model declares ' ~ data_type ~ ': rebuilding it in full.', info=true) }}
            {{- return(true) }}
        {%- endif %}
    {%- endfor %}
    {{- return(false) }}
{%- endmacro %}
