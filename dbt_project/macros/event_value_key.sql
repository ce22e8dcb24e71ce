{% macro event_value_key(field, value) -%}
    {#-
        An event field's value as one number (sessions' event_value_keys), the field named
        as the dashboards' filters name it (`event`, `prop:<key>`); queries/base.py's
        EVENT_VALUE_KEY is the same expression. Two pairs collide with probability ~n^2/2^65, n
        the distinct pairs of a project.
    -#}
    cityHash64({{ field }}, {{ value }})
{%- endmacro %}
