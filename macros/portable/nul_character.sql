{#
    Helpers of the file destinations' marts (criteo_sales,
    pinterest_conversions_csv, snapchat_conversions_csv): a CSV cell holds
    any text but a NUL character.
#}

{# True when the text holds a NUL character (U+0000); false for NULL. #}
{% macro has_nul_character(expression) -%}
    {{ return(adapter.dispatch('has_nul_character', 'offline_conversions')(expression)) }}
{%- endmacro %}

{% macro default__has_nul_character(expression) -%}
    (coalesce(strpos({{ expression }}, chr(0)), 0) > 0)
{%- endmacro %}

{% macro spark__has_nul_character(expression) -%}
    (coalesce(instr({{ expression }}, chr(0)), 0) > 0)
{%- endmacro %}
