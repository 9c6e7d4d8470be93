{# The share of a mart's rows where `expression` is not NULL, 4 decimals; a typed NULL when `expression` is none (the destination has no such field). #}
{% macro share_of_rows_with(expression) -%}
    {%- if expression is none -%}
        cast(null as double)
    {%- else -%}
        round(cast(avg(case when {{ expression }} is not null then 1.0 else 0.0 end) as double), 4)
    {%- endif -%}
{%- endmacro %}


{# Text values as a SQL list of literals ('a', 'b'), quotes doubled. #}
{% macro sql_text_list(values) -%}
    {%- for value in values -%}
        '{{ value | string | replace("'", "''") }}'{{ ", " if not loop.last }}
    {%- endfor -%}
{%- endmacro %}
