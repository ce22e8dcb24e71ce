{% macro incremental_watermark(column='last_received_at') -%}
    {#-
        The received_at from which an incremental run re-reads its inputs: the newest one this
        model has seen (its own `column`), minus `reprocess_minutes` for rows the collector had
        received but not yet inserted when the last run read them.
    -#}
    (
        select max({{ column }}) - toIntervalMinute({{ var('reprocess_minutes') }})
        from {{ this }}
    )
{%- endmacro %}
