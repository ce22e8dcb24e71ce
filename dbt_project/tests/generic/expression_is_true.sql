{#- Rows for which `expression` does not hold (the test fails when there are any). -#}
{% test expression_is_true(model, expression, where=none) %}
    select * from {{ model }}
    where not ({{ expression }})
    {%- if where %} and ({{ where }}){% endif %}
{% endtest %}
