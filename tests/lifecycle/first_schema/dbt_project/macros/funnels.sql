{#-
    Funnels are rows of the seed funnels.csv (project_id, funnel, step, event_name,
    window_seconds). ClickHouse's windowFunnel takes its window and its steps as constants,
    so the shape of the current definitions (their distinct windows, their most steps) is read
    at compile time and the funnel_steps model branches on it.
-#}

{% macro funnel_definitions() -%}
    {#- One row per funnel: its steps in order, its window and a hash of both. -#}
    select
        project_id,
        funnel,
        arrayMap(pair -> pair.2, arraySort(groupArray((step, event_name)))) as steps,
        coalesce(max(window_seconds), {{ var('funnel_default_window_seconds') }}) as window_seconds,
        lower(hex(sipHash64(steps, window_seconds))) as definition_hash
    from {{ ref('funnels') }}
    group by project_id, funnel
{%- endmacro %}


{% macro funnel_shape() -%}
    {#- {'windows': [distinct window_seconds], 'max_steps': n} of the current definitions. -#}
    {%- set shape = {'windows': [], 'max_steps': 1} -%}
    {%- if execute -%}
        {%- set seed = load_relation(ref('funnels')) -%}
        {%- if seed is not none -%}
            {%- set rows = run_query(
                "select window_seconds, max(length(steps)) from (" ~ funnel_definitions()
                ~ ") group by window_seconds order by window_seconds"
            ) -%}
            {%- for row in rows -%}
                {%- do shape['windows'].append(row[0] | int) -%}
                {%- do shape.update({'max_steps': [shape['max_steps'], row[1] | int] | max}) -%}
            {%- endfor -%}
        {%- endif -%}
    {%- endif -%}
    {{ return(shape) }}
{%- endmacro %}
