{#
    Aggregate rows into a JSON array of objects, as text. `fields` is a list
    of (key, expression) pairs, kept in order; `order_by` orders the array so
    a rebuild on the same data gives the same text.
#}
{% macro json_array_agg(fields, order_by) -%}
    {{ return(adapter.dispatch('json_array_agg', 'offline_conversions')(fields, order_by)) }}
{%- endmacro %}

{% macro default__json_array_agg(fields, order_by) -%}
    {{ exceptions.raise_compiler_error(
        "json_array_agg has no implementation for adapter '" ~ adapter.type()
        ~ "': add a " ~ adapter.type() ~ "__json_array_agg macro in macros/portable/json.sql") }}
{%- endmacro %}

{% macro duckdb__json_array_agg(fields, order_by) -%}
    cast(to_json(list(struct_pack(
        {%- for key, expression in fields %}
        "{{ key }}" := {{ expression }}{{ "," if not loop.last }}
        {%- endfor %}
    ) order by {{ order_by }})) as varchar)
{%- endmacro %}

{#
    Spark: collect_list has no ORDER BY, so (sort key, object) pairs are
    sorted and the objects kept. to_json leaves out NULL fields unless told
    not to; DuckDB writes them as null, and so does this. Both write the
    same compact text: no spaces, keys in the order given, decimals with
    their scale (50.00), strings as UTF-8 with " and \ escaped.
#}
{% macro spark__json_array_agg(fields, order_by) -%}
    to_json(transform(
        array_sort(collect_list(struct(struct({{ order_by }}) as sort_key, named_struct(
            {%- for key, expression in fields %}
            '{{ key }}', {{ expression }}{{ "," if not loop.last }}
            {%- endfor %}
        ) as item))),
        entry -> entry.item
    ), map('ignoreNullFields', 'false'))
{%- endmacro %}


{# A JSON array of strings, ordered. #}
{% macro json_string_array_agg(expression, order_by) -%}
    {{ return(adapter.dispatch('json_string_array_agg', 'offline_conversions')(expression, order_by)) }}
{%- endmacro %}

{% macro default__json_string_array_agg(expression, order_by) -%}
    {{ exceptions.raise_compiler_error(
        "json_string_array_agg has no implementation for adapter '" ~ adapter.type() ~ "'") }}
{%- endmacro %}

{% macro duckdb__json_string_array_agg(expression, order_by) -%}
    cast(to_json(list(cast({{ expression }} as varchar) order by {{ order_by }})) as varchar)
{%- endmacro %}

{% macro spark__json_string_array_agg(expression, order_by) -%}
    to_json(transform(
        array_sort(collect_list(struct(struct({{ order_by }}) as sort_key, cast({{ expression }} as string) as item))),
        entry -> entry.item
    ))
{%- endmacro %}
