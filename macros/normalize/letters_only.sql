{# Letters (any script) and combining marks only, lower-case, NFC; empty is NULL. #}
{% macro letters_only(expression) -%}
    nullif({{ offline_conversions.regexp_replace_all(
        offline_conversions.lower_text(offline_conversions.unicode_nfc(offline_conversions.trim_whitespace(expression))),
        '[^\\p{L}\\p{M}]', '') }}, '')
{%- endmacro %}
