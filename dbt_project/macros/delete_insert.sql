{#-
    dbt-clickhouse's delete+insert (1.10, incremental/incremental.sql), with opt-in changes:
    - `small_batches=true` (models whose incremental batch is a few days' rows): the new rows go
      to a Memory table created in one statement (but on a cluster), named by the invocation so
      no earlier one can be left to drop. The adapter sends four statements for the same
      (drop, create, describe, insert); in the 5-minute job every round trip counts
      (docs/decisions/0034).
    - Either way the model's columns are checked here, against the new rows' table: the models
      on this path set on_schema_change='ignore', because the adapter's own check runs the
      model's query a second time (`select * from (<model>) limit 0`, which evaluates its
      subqueries: about as long as the query itself). A column added, dropped or retyped fails
      the run as on_schema_change='fail' does.
    - `skip_delete_of_new_keys=true` (implies the above): first ask whether any key of the new
      rows is stored at all, and run the DELETE only then. A lightweight DELETE is a mutation of
      every part of the table even when it matches no row (about 2 s on stg_events at 10 M
      events, docs/decisions/0014); deleting nothing changes nothing, so skipping it is exact.
    - `replace_spans={'start': <column>, 'end': <expression>, 'day': <column>}` (the session
      marts, docs/decisions/0036): the new rows replace the stored rows of their unique key
      (project, device) whose `start` lies within a new row's span, from its `start` to its
      `end`; the rest of the key's rows stay. The stored rows to delete are listed first (a
      Memory table: the DELETE's own subquery would run for every part) and the DELETE runs
      only when there are any, bounded by their `day`s (a column of the sort and partition
      keys), so the parts holding none of them are not rewritten.
    The rest is the adapter's macro as it was; every other model, and distributed tables, get the
    adapter's own macro (`dbt.`: the namespace of dbt's and the adapter's macros).
-#}
{% macro clickhouse__incremental_delete_insert(existing_relation, unique_key, incremental_predicates, is_distributed=False) %}
    {%- set skip_delete = config.get('skip_delete_of_new_keys', false) %}
    {%- set spans = config.get('replace_spans') %}
    {%- if is_distributed or not (skip_delete or spans or config.get('small_batches', false)) %}
        {%- do return(dbt.clickhouse__incremental_delete_insert(
                existing_relation, unique_key, incremental_predicates, is_distributed)) %}
    {%- endif %}
    {% set new_data_relation = existing_relation.incorporate(path={"identifier": existing_relation.identifier
       + '__dbt_new_data_' + invocation_id.replace('-', '_')}) %}
    {#- a Memory table in one statement: the batch is small, and the model's projections and
        indexes (which the adapter's create would add and build) serve only the real table. On
        a cluster the new rows must be a replicated table, as the adapter makes them; the
        session marts' batch can be an import's whole history, so it goes to disk. -#}
    {% call statement('main') %}
        {%- if target.name == 'cluster' or spans %}
        {{ get_create_table_as_sql(False, new_data_relation, sql) }}
        {%- else %}
        create table {{ new_data_relation }} engine = Memory as
        {{ sql }}
        {{ adapter.get_model_query_settings(model) }}
        {%- endif %}
    {% endcall %}

    {%- set dest_columns = adapter.get_columns_in_relation(existing_relation) -%}
    {%- set new_columns = adapter.get_columns_in_relation(new_data_relation) -%}
    {%- set stored, built = {}, {} %}
    {%- for column in dest_columns %}{% do stored.update({column.name: column.dtype}) %}{% endfor %}
    {%- for column in new_columns %}{% do built.update({column.name: column.dtype}) %}{% endfor %}
    {%- if stored != built %}
        {% do adapter.drop_relation(new_data_relation) %}
        {{ exceptions.raise_compiler_error(
            'The columns of ' ~ existing_relation ~ ' changed (stored: ' ~ tojson(stored)
            ~ '; the model now: ' ~ tojson(built) ~ '). Run a full refresh of it.') }}
    {%- endif %}

    {% if spans %}
        {% do delete_replaced_spans(existing_relation, new_data_relation, unique_key, spans) %}
    {% else %}
        {% do delete_stored_keys(existing_relation, new_data_relation, unique_key,
                                 incremental_predicates, skip_delete) %}
    {% endif %}
    {%- set dest_cols_csv = dest_columns | map(attribute='quoted') | join(', ') -%}
    {% call statement('insert_new_data') %}
        insert into {{ existing_relation }} select {{ dest_cols_csv }} from {{ new_data_relation }} {{ adapter.get_model_query_settings(model) }}
    {% endcall %}
    {% do adapter.drop_relation(new_data_relation) %}
{% endmacro %}


{% macro delete_replaced_spans(existing_relation, new_data_relation, unique_key, spans) %}
    {#- replace_spans: delete the stored rows whose start lies within a new row's span. -#}
    {%- set replaced_relation = new_data_relation.incorporate(path={"identifier":
        existing_relation.identifier + '__dbt_replaced_' + invocation_id.replace('-', '_')}) %}
    {% call statement('replaced_rows') %}
        create table {{ replaced_relation }} engine = Memory as
        select {{ unique_key }}, stored_start as {{ spans.start }}, {{ spans.day }}
        from (
            select {{ unique_key }}, {{ spans.start }} as stored_start, {{ spans.day }}
            from {{ existing_relation }}
            prewhere {{ spans.start }} >= (select min({{ spans.start }}) from {{ new_data_relation }})
            where ({{ unique_key }}) in (select {{ unique_key }} from {{ new_data_relation }})
        ) as stored
        inner join (
            select {{ unique_key }}, {{ spans.start }} as span_start, {{ spans.end }} as span_end
            from {{ new_data_relation }}
        ) as spans using ({{ unique_key }})
        where stored_start between span_start and span_end
    {% endcall %}
    {% call statement('replaced_days', fetch_result=True) %}
        select count(), toString(min({{ spans.day }})), toString(max({{ spans.day }}))
        from {{ replaced_relation }}
    {% endcall %}
    {%- set replaced = load_result('replaced_days')['data'][0] %}
    {% if replaced[0] | int > 0 %}
        {% call statement('delete_existing_data') %}
            delete from {{ existing_relation }}
            where {{ spans.day }} between {{ dbt.string_literal(replaced[1]) }}
                and {{ dbt.string_literal(replaced[2]) }}
                and ({{ unique_key }}, {{ spans.start }}) in (
                    select {{ unique_key }}, {{ spans.start }} from {{ replaced_relation }})
            {{ adapter.get_model_query_settings(model) }}
        {% endcall %}
    {% endif %}
    {% do adapter.drop_relation(replaced_relation) %}
{% endmacro %}


{% macro delete_stored_keys(existing_relation, new_data_relation, unique_key, incremental_predicates, skip_delete) %}
    {#- The adapter's delete of the new rows' keys; with skip_delete_of_new_keys only when one is stored. -#}
    {% if skip_delete %}
    {% call statement('stored_new_keys', fetch_result=True) %}
        select count() from (
            select 1 from {{ existing_relation }}
            prewhere ({{ unique_key }}) in (select {{ unique_key }} from {{ new_data_relation }})
            {%- if incremental_predicates %}
            where {{ incremental_predicates | join(' and ') }}
            {%- endif %}
            limit 1
        )
    {% endcall %}
    {% endif %}
    {% if not skip_delete or load_result('stored_new_keys')['data'][0][0] | int > 0 %}
        {% call statement('delete_existing_data') %}
            delete from {{ existing_relation }} where ({{ unique_key }}) in (select {{ unique_key }}
                                          from {{ new_data_relation }})
            {%- for predicate in incremental_predicates %}
                and {{ predicate }}
            {%- endfor %}
            {{ adapter.get_model_query_settings(model) }}
        {% endcall %}
    {% endif %}
{% endmacro %}
