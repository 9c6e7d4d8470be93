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


{#
    True for the channels that count as offline sales (var offline_channels,
    default store and phone): online orders already reach the platforms
    through their pixels and would be counted twice.
#}
{% macro in_offline_channels(channel_expression) -%}
    {%- set channels = var('offline_channels') -%}
    {%- if channels is string -%}
        {%- set channels = channels.split(',') | map('trim') | list -%}
    {%- endif -%}
    {{ channel_expression }} in (
        {%- for channel in channels -%}
            '{{ channel | lower }}'{{ ', ' if not loop.last }}
        {%- endfor -%}
    )
{%- endmacro %}
