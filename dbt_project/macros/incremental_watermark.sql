{% macro incremental_watermark(column='last_received_at') -%}
    {#-
        The received_at from which an incremental run re-reads its inputs: the newest one this
        model has seen (its own `column`), minus `reprocess_minutes` for rows the collector had
        received but not yet inserted when the last run read them. Times after this run started
        do not count: one row stamped in the future (a writer with a wrong clock) would
        otherwise hold the watermark ahead of every row received until then, and no new row
        would be read.
    -#}
    (
        select maxIf({{ column }}, {{ column }} <= {{ run_started() }})
            - toIntervalMinute({{ var('reprocess_minutes') }})
        from {{ this }}
    )
{%- endmacro %}
