{#-
  dbt `grants:` on the embedded warehouse. chdb, the engine behind `trackhouse warehouse`, has
  no users, roles or grants (GRANT and SHOW GRANTS fail with ACCESS_CONTROL / UNKNOWN_USER
  errors), so on that target the grant statements are skipped with a warning instead of
  failing the model. `trackhouse.dbt.dbt_env()` sets TRACKHOUSE_DBT_EMBEDDED; on a real
  ClickHouse server (TRACKHOUSE_CLICKHOUSE_URL) dbt's own apply_grants runs unchanged.
-#}
{% macro clickhouse__apply_grants(relation, grant_config, should_revoke=True) %}
  {%- if grant_config and env_var('TRACKHOUSE_DBT_EMBEDDED', 'false') == 'true' -%}
    {%- do exceptions.warn(
        'grants on ' ~ relation.render() ~ ' skipped: the embedded warehouse has no users, '
        ~ 'roles or grants (configured: ' ~ tojson(grant_config) ~ '). They apply on a '
        ~ 'ClickHouse server (TRACKHOUSE_CLICKHOUSE_URL).'
    ) -%}
  {%- else -%}
    {{ return(default__apply_grants(relation, grant_config, should_revoke)) }}
  {%- endif -%}
{% endmacro %}
