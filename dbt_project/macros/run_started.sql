{% macro run_started() -%}
    {#-
        When this dbt run started (UTC), as a DateTime64 literal: one "now" for every model of
        the run (now64() would differ from model to model), visible in the compiled SQL.
    -#}
    toDateTime64('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f")[:23] }}', 3, 'UTC')
{%- endmacro %}
