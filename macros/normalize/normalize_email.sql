{#
    Email, the rule every platform shares: trim Unicode whitespace, lower-case.
    A value without exactly one @ and a dotted domain, or with whitespace
    inside, is not an email and becomes NULL.
#}
{% macro normalize_email(expression) -%}
    {%- set ws = '\\s\\x{0b}\\x{1c}-\\x{1f}\\x{85}\\p{Z}\\x{200b}\\x{feff}' -%}
    {%- set candidate = offline_conversions.lower_text(offline_conversions.trim_whitespace(expression)) -%}
    {{ offline_conversions.keep_if_hashed(expression,
        'case when ' ~ offline_conversions.regexp_full_match(candidate,
            '[^@' ~ ws ~ ']+@[^@.' ~ ws ~ ']+(?:\\.[^@.' ~ ws ~ ']+)+')
        ~ ' then ' ~ candidate ~ ' end') }}
{%- endmacro %}


{#
    Google (Data Manager / Ads): for gmail.com and googlemail.com delete every
    dot in the local part; a +tag stays. Takes a normalize_email result.
#}
{% macro normalize_email_google(normalized_email) -%}
    case
        when {{ normalized_email }} like '%@gmail.com' or {{ normalized_email }} like '%@googlemail.com'
            then replace({{ dbt.split_part(normalized_email, "'@'", 1) }}, '.', '')
                || '@' || {{ dbt.split_part(normalized_email, "'@'", 2) }}
        else {{ normalized_email }}
    end
{%- endmacro %}


{#
    UID2: for gmail.com delete every dot in the local part and drop a +tag.
    Takes a normalize_email result.
#}
{% macro normalize_email_uid2(normalized_email) -%}
    case
        when {{ normalized_email }} like '%@gmail.com'
            then replace({{ dbt.split_part(dbt.split_part(normalized_email, "'@'", 1), "'+'", 1) }}, '.', '')
                || '@gmail.com'
        else {{ normalized_email }}
    end
{%- endmacro %}
