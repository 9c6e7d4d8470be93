{# Text values as a SQL list of literals ('a', 'b'), quotes doubled. #}
{% macro sql_text_list(values) -%}
    {%- for value in values -%}
        '{{ value | string | replace("'", "''") }}'{{ ", " if not loop.last }}
    {%- endfor -%}
{%- endmacro %}
