{#
    Email, the rule every platform shares: trim Unicode whitespace, lower-case.
    A value without exactly one @ and a dotted domain, or with whitespace
    inside, is not an email and becomes NULL.
#}
{% macro normalize_email(expression) -%}
    {{ offline_conversions.keep_if_hashed(expression, offline_conversions.email_if_well_formed(
        offline_conversions.lower_text(offline_conversions.trim_whitespace(expression)))) }}
{%- endmacro %}


{# The candidate when it has exactly one @, a dotted domain and no whitespace; else NULL. #}
{% macro email_if_well_formed(candidate) -%}
    {%- set ws = '\\s\\x{0b}\\x{1c}-\\x{1f}\\x{85}\\p{Z}\\x{200b}\\x{feff}' -%}
    case when {{ offline_conversions.regexp_full_match(candidate,
        '[^@' ~ ws ~ ']+@[^@.' ~ ws ~ ']+(?:\\.[^@.' ~ ws ~ ']+)+') }} then {{ candidate }} end
{%- endmacro %}


{#
    Google (Data Manager / Ads): for gmail.com and googlemail.com drop the
    +suffix of the local part (the first '+' and all after it), then delete
    every dot in what is left: "Cloudy.SF+shopping@gmail.com" ->
    "cloudysf@gmail.com". Other domains keep their dots and '+'. A local part
    left empty ("+x@gmail.com", ".@gmail.com") is not an email: NULL. This
    is what google-ads-datamanager-util's Formatter.format_email_address and
    Google's "Format user data" guide do (tests/vendors/test_google_datamanager.py
    checks it against the util). Takes a normalize_email result.
#}
{% macro normalize_email_google(normalized_email) -%}
    case
        when {{ normalized_email }} like '%@gmail.com' or {{ normalized_email }} like '%@googlemail.com'
            then nullif(replace({{ dbt.split_part(dbt.split_part(normalized_email, "'@'", 1), "'+'", 1) }}, '.', ''), '')
                || '@' || {{ dbt.split_part(normalized_email, "'@'", 2) }}
        else {{ normalized_email }}
    end
{%- endmacro %}


{#
    UID2, as its normalisation page and uid2-client's normalize_email_string
    have it: trim, lower-case the ASCII letters only (an accented capital
    stays as written), and for gmail.com drop the +tag and every dot of the
    local part; a gmail local part left empty is no email (NULL). Takes the
    email as written.
#}
{% macro normalize_email_uid2(expression) -%}
    {%- set candidate = offline_conversions.email_if_well_formed(
        "translate(" ~ offline_conversions.trim_whitespace(expression)
        ~ ", 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')") -%}
    {{ offline_conversions.keep_if_hashed(expression,
        "case
            when " ~ candidate ~ " like '%@gmail.com'
                then nullif(replace(" ~ dbt.split_part(dbt.split_part(candidate, "'@'", 1), "'+'", 1) ~ ", '.', ''), '')
                    || '@gmail.com'
            else " ~ candidate ~ "
        end") }}
{%- endmacro %}
