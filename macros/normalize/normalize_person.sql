{#
    First and last name (Meta, Pinterest, Snapchat): lower-case, NFC, letters
    of any script and their accents kept, everything else (spaces,
    punctuation, digits) removed: "Valéry" -> "valéry", "O'Brien" -> "obrien".
#}
{% macro normalize_name(expression) -%}
    {{ offline_conversions.keep_if_hashed(expression, offline_conversions.letters_only(expression)) }}
{%- endmacro %}


{# Birth date as YYYYMMDD, from YYYY-MM-DD or M/D/YYYY; before 1900 or after as_of is NULL. #}
{% macro normalize_birth_date(expression) -%}
    {%- set parsed = offline_conversions.parse_date_flexible(offline_conversions.trim_whitespace(expression)) -%}
    {{ offline_conversions.keep_if_hashed(expression,
        "case when " ~ parsed ~ " >= cast('1900-01-01' as date) and " ~ parsed ~ " < cast(" ~ offline_conversions.as_of() ~ " as date)"
        ~ " then " ~ offline_conversions.format_timestamp(parsed, '%Y%m%d') ~ " end") }}
{%- endmacro %}


{# Gender as 'f' or 'm'; anything else is NULL. #}
{% macro normalize_gender(expression) -%}
    {%- set value = offline_conversions.lower_text(offline_conversions.trim_whitespace(expression)) -%}
    {{ offline_conversions.keep_if_hashed(expression,
        "case
            when " ~ value ~ " in ('f', 'female', 'w', 'woman') then 'f'
            when " ~ value ~ " in ('m', 'male', 'man') then 'm'
        end") }}
{%- endmacro %}


{# The brand's own customer id, trimmed; it is hashed like any identifier. #}
{% macro normalize_external_id(expression) -%}
    {{ offline_conversions.trim_whitespace('cast(' ~ expression ~ ' as ' ~ offline_conversions.text_type() ~ ')') }}
{%- endmacro %}
