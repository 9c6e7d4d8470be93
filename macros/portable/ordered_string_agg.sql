{#
    Join values into one delimited string, in a stable order. dbt.listagg
    orders everywhere but on Spark, whose collect_list has no ORDER BY, so
    Spark sorts (sort key, value) pairs itself, like json_array_agg does.
    `order_by` is one expression.
#}
{% macro ordered_string_agg(expression, delimiter, order_by) -%}
    {{ return(adapter.dispatch('ordered_string_agg', 'offline_conversions')(expression, delimiter, order_by)) }}
{%- endmacro %}

{% macro default__ordered_string_agg(expression, delimiter, order_by) -%}
    {{ dbt.listagg(
        'cast(' ~ expression ~ ' as ' ~ dbt.type_string() ~ ')',
        "'" ~ delimiter ~ "'",
        'order by ' ~ order_by) }}
{%- endmacro %}

{% macro spark__ordered_string_agg(expression, delimiter, order_by) -%}
    array_join(transform(
        array_sort(collect_list(struct(struct({{ order_by }}) as sort_key, cast({{ expression }} as string) as item))),
        entry -> entry.item
    ), '{{ delimiter }}')
{%- endmacro %}
