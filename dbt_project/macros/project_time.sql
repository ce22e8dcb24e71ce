{#-
    Project time: days, weeks, months and hours in each project's own time zone.

    ClickHouse date functions take the time zone as a constant, so one column cannot carry a
    different zone per row. Instead the model is compiled against the current projects: the
    zone of every project not on UTC is read at compile time (dbt compiles on every run), and
    the expression branches on the project id, e.g.

        multiIf(project_id in ('shop'), toDate(created_at, 'Europe/Berlin'),
                project_id in ('blog', 'docs'), toDate(created_at, 'America/New_York'),
                toDate(created_at, 'UTC'))

    Projects share a branch per zone, so the expression grows with the number of distinct zones,
    not of projects. A project whose zone changes needs a full refresh of the marts.
-#}

{% macro project_timezones() -%}
    {#- {project_id: IANA zone} of the projects not on UTC; {} before the first build. -#}
    {%- if not execute -%}
        {{ return({}) }}
    {%- endif -%}
    {#- read once per model: a model calls this for every date expression, and each read is a
        round trip (`model` is the model's own context dict, fresh for every model) -#}
    {%- if '_trackhouse_zones' in model -%}
        {{ return(model['_trackhouse_zones']) }}
    {%- endif -%}
    {%- set projects = load_relation(ref('stg_projects')) -%}
    {%- if projects is none -%}
        {{ return({}) }}
    {%- endif -%}
    {%- set rows = run_query(
        "select project_id, timezone from " ~ projects ~ " where timezone != 'UTC' order by project_id"
    ) -%}
    {%- set zones = {} -%}
    {%- for row in rows -%}
        {%- do zones.update({row[0]: row[1]}) -%}
    {%- endfor -%}
    {%- do model.update({'_trackhouse_zones': zones}) -%}
    {{ return(zones) }}
{%- endmacro %}


{% macro in_project_timezone(function, timestamp, project_id='project_id') -%}
    {#- `function`(timestamp, <the project's zone>) for any ClickHouse date function taking a zone. -#}
    {%- set projects_by_zone = {} -%}
    {%- for project, zone in project_timezones().items() -%}
        {%- do projects_by_zone.setdefault(zone, []).append(project) -%}
    {%- endfor -%}
    {%- if projects_by_zone -%}
        multiIf(
        {%- for zone, projects in projects_by_zone.items() | sort %}
            {{ project_id }} in ({{ sql_string_list(projects) }}), {{ function }}({{ timestamp }}, '{{ zone }}'),
        {%- endfor %}
            {{ function }}({{ timestamp }}, 'UTC')
        )
    {%- else -%}
        {{ function }}({{ timestamp }}, 'UTC')
    {%- endif -%}
{%- endmacro %}


{% macro sql_string_list(values) -%}
    {%- for value in values -%}
        '{{ value | replace("\\", "\\\\") | replace("'", "\\'") }}'{{ ", " if not loop.last }}
    {%- endfor -%}
{%- endmacro %}
