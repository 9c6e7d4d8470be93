{#
    Phone to E.164 with '+' (TikTok, Google, UID2; Meta, Pinterest and
    Snapchat take the same digits without the '+': see phone_digits).

    calling_code and trunk_prefix are the customer's country's (seed
    country_codes), used only for numbers written without an international
    prefix. The rule:
      1. trim; drop an extension at the end (x123, ext. 45, extension 7, #12);
         drop a "(0)" trunk hint (+44 (0)20 ...);
      2. any letter left means it is not a phone number: NULL;
      3. '+' or '00' in front: international, the digits as written;
         otherwise national: drop the country's trunk prefix if the number
         starts with it, then put the calling code in front;
      4. keep it only if it can be E.164: 8 to 15 digits, not starting with 0,
         and exactly 11 for calling code 1 (NANP, area code 2-9).
#}
{% macro normalize_phone_e164(expression, calling_code, trunk_prefix) -%}
    {%- set ws = offline_conversions.whitespace_class() -%}
    {%- set trimmed = offline_conversions.trim_whitespace(expression) -%}
    {%- set written = "replace(" ~ offline_conversions.regexp_replace_all(trimmed,
        '(?i)' ~ ws ~ '*(?:ext(?:ension)?\\.?|x|#)' ~ ws ~ '*[0-9]+$', '') ~ ", '(0)', '')" -%}
    {%- set digits = offline_conversions.regexp_replace_all(written, '[^0-9]', '') -%}
    {%- set with_country = "case
            when " ~ written ~ " like '+%' then " ~ digits ~ "
            when " ~ digits ~ " like '00%' then substr(" ~ digits ~ ", 3)
            when coalesce(" ~ trunk_prefix ~ ", '') <> '' and " ~ digits ~ " like " ~ trunk_prefix ~ " || '%'
                then " ~ calling_code ~ " || substr(" ~ digits ~ ", length(" ~ trunk_prefix ~ ") + 1)
            else " ~ calling_code ~ " || " ~ digits ~ "
        end" -%}
    {{ offline_conversions.keep_if_hashed(expression,
        "case
            when " ~ trimmed ~ " is null then null
            when " ~ offline_conversions.regexp_full_match(written, '.*\\p{L}.*') ~ " then null
            when " ~ offline_conversions.regexp_full_match(with_country, '1[2-9][0-9]{9}|[2-9][0-9]{7,14}') ~ "
                then '+' || " ~ with_country ~ "
        end") }}
{%- endmacro %}


{# E.164 digits without the '+' (Meta, Pinterest, Snapchat); a hash passes through. #}
{% macro phone_digits(e164_expression) -%}
    case
        when {{ e164_expression }} like '+%' then substr({{ e164_expression }}, 2)
        else {{ e164_expression }}
    end
{%- endmacro %}
