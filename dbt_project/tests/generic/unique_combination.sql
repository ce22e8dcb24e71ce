{#- Combinations of `columns` that occur more than once: the grain of a model. -#}
{% test unique_combination(model, columns) %}
    select {{ columns | join(', ') }}, count() as occurrences
    from {{ model }}
    group by {{ columns | join(', ') }}
    having occurrences > 1
{% endtest %}
