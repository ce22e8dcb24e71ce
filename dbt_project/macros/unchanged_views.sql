{#-
    Views are replaced only when they would change. dbt-clickhouse replaces every view on every
    run (a check for an old materialized view, then CREATE OR REPLACE VIEW), and the 5-minute job
    runs nine views that almost never change: a few round trips each, which add up to seconds
    of a job whose target is 5 s (docs/decisions/0034).

    A view records in its comment a hash of its compiled SQL and of its parents' columns (a
    ClickHouse view keeps the column list it was created with, so a parent rebuilt with other
    columns must replace it too). When both match, the run leaves the view as it is; otherwise,
    and on --full-refresh, the adapter's own view materialization runs and the hash is
    recorded. With persist_docs on relations the comment is the model's description: every run
    then replaces the view, as before.
-#}

{% materialization view, adapter='clickhouse' %}
    {%- set existing = load_cached_relation(this) %}
    {%- set marker, stored = none, none %}
    {%- if not config.persist_relation_docs() %}
        {%- set marker, stored = view_markers(sql, this) %}
    {%- endif %}
    {%- if marker and marker == stored and existing is not none and existing.is_view
          and not should_full_refresh() %}
        {{ log('View ' ~ this ~ ' unchanged: left as it is') }}
        {% call noop_statement('main', 'UNCHANGED') %}{% endcall %}
        {{ return({'relations': [this.incorporate(type='view')]}) }}
    {%- endif %}
    {%- set result = dbt.materialization_view_clickhouse() %}
    {%- if marker %}
        {% call statement('record_view_marker') %}
            alter table {{ this }} {{ on_cluster_clause(this) }} modify comment '{{ marker }}'
        {% endcall %}
    {%- endif %}
    {{ return(result) }}
{% endmaterialization %}


{% macro view_markers(sql, relation) -%}
    {#-
        (the marker this run would record, the one `relation` has), in one query: 'dbt-view
        <md5 of the SQL> <hash of the parents' columns>'; the stored one is none without a view.
    -#}
    {%- set parents = [] %}
    {%- for unique_id in model.depends_on.nodes %}
        {%- set node = graph.nodes.get(unique_id) or graph.sources.get(unique_id) %}
        {%- if node and node.config.materialized != 'ephemeral' %}
            {%- do parents.append("('" ~ node.schema ~ "', '" ~ (node.alias or node.identifier) ~ "')") %}
        {%- endif %}
    {%- endfor %}
    {%- set rows = run_query(
        "select toString(cityHash64(groupArray((database, table, name, type)))), "
        ~ "(select any(comment) from system.tables where database = '" ~ relation.schema
        ~ "' and name = '" ~ relation.identifier ~ "') from ("
        ~ "select database, table, name, type from system.columns where (database, table) in ("
        ~ (parents | sort | join(', ') if parents else "('', '')")
        ~ ") order by database, table, position)"
    ) %}
    {%- set row = rows.rows[0] %}
    {{- return(('dbt-view ' ~ local_md5(sql) ~ ' ' ~ row[0], row[1])) }}
{%- endmacro %}
