{# A value already hashed upstream: 64 hex characters after trim and lower. #}
{% macro is_sha256_hex(expression) -%}
    {{ offline_conversions.regexp_full_match(expression, '[0-9a-f]{64}') }}
{%- endmacro %}

{#
    Every rule first trims and lower-cases; a value that is then 64 hex
    characters was hashed upstream and is kept as it is, never re-normalised
    (which would mangle it) nor hashed twice.
#}
{% macro keep_if_hashed(expression, normalized) -%}
    case
        when {{ offline_conversions.is_sha256_hex(offline_conversions.lower_text(offline_conversions.trim_whitespace(expression))) }}
            then {{ offline_conversions.lower_text(offline_conversions.trim_whitespace(expression)) }}
        else {{ normalized }}
    end
{%- endmacro %}
