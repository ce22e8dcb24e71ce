{% macro run_started() -%}
    {#-
        When this dbt run started (UTC), as a DateTime64 literal: "now" for every model of the
        run alike. A constant, unlike now64(), so ClickHouse folds the conditions using it
        before it plans the scans.
    -#}
    toDateTime64('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f")[:23] }}', 3, 'UTC')
{%- endmacro %}
