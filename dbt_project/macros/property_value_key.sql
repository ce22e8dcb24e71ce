{% macro property_value_key(key, value) -%}
    {#-
        An event property's key and value as one number (session_contents' property_value_keys);
        queries/base.py's PROPERTY_VALUE_KEY is the same expression. Two pairs collide with
        probability ~n^2/2^65, n the distinct pairs of a project.
    -#}
    cityHash64({{ key }}, {{ value }})
{%- endmacro %}
