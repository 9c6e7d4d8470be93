{#
    Whitespace means all of Unicode's: ASCII spaces and controls, the
    separators of category Z (no-break space, thin and ideographic spaces,
    line and paragraph separators), NEL, and the zero-width space and BOM
    that copy-paste leaves behind. tests/sql/reference.py holds the same set.
#}

{% macro whitespace_class() -%}
    {{ return('[\\s\\x{0b}\\x{1c}-\\x{1f}\\x{85}\\p{Z}\\x{200b}\\x{feff}]') }}
{%- endmacro %}

{# Remove Unicode whitespace at both ends; empty becomes NULL. #}
{% macro trim_whitespace(expression) -%}
    {%- set ws = offline_conversions.whitespace_class() -%}
    nullif({{ offline_conversions.regexp_replace_all(expression, '^' ~ ws ~ '+|' ~ ws ~ '+$', '') }}, '')
{%- endmacro %}

{# Remove every Unicode whitespace character; empty becomes NULL. #}
{% macro strip_whitespace(expression) -%}
    nullif({{ offline_conversions.regexp_replace_all(expression, offline_conversions.whitespace_class() ~ '+', '') }}, '')
{%- endmacro %}

{# Unicode NFC, so a letter and its combining accent hash like the precomposed letter. #}
{% macro unicode_nfc(expression) -%}
    {{ return(adapter.dispatch('unicode_nfc', 'offline_conversions')(expression)) }}
{%- endmacro %}

{% macro default__unicode_nfc(expression) -%}
    {{ expression }}
{%- endmacro %}

{% macro duckdb__unicode_nfc(expression) -%}
    nfc_normalize({{ expression }})
{%- endmacro %}


{# A safe cast: NULL where the value does not convert. #}
{% macro safe_cast(expression, data_type) -%}
    {{ return(adapter.dispatch('safe_cast', 'offline_conversions')(expression, data_type)) }}
{%- endmacro %}

{% macro default__safe_cast(expression, data_type) -%}
    try_cast({{ expression }} as {{ data_type }})
{%- endmacro %}
