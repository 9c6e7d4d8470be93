{# City: lower-case letters only, no spaces or punctuation ("New York" -> "newyork"). #}
{% macro normalize_city(expression) -%}
    {{ offline_conversions.keep_if_hashed(expression, offline_conversions.letters_only(expression)) }}
{%- endmacro %}


{#
    State, first step: lower-case letters and digits only ("N.Y." -> "ny",
    "New York" -> "newyork"). US names become 2-letter codes by a lookup
    in the model (seed us_states), which needs a join, not an expression.
#}
{% macro normalize_state(expression) -%}
    {{ offline_conversions.keep_if_hashed(expression,
        "nullif(" ~ offline_conversions.regexp_replace_all(
            offline_conversions.lower_text(offline_conversions.unicode_nfc(offline_conversions.trim_whitespace(expression))),
            '[^\\p{L}\\p{M}0-9]', '') ~ ", '')") }}
{%- endmacro %}


{#
    Postal code: lower-case, no whitespace, nothing from the first '-' on.
    US: the first five digits ("98101-1234" -> "98101"), else NULL.
    country_alpha2 is the lower-case country code.
#}
{% macro normalize_zip(expression, country_alpha2) -%}
    {%- set compact = dbt.split_part(offline_conversions.lower_text(offline_conversions.strip_whitespace(expression)), "'-'", 1) -%}
    {{ offline_conversions.keep_if_hashed(expression,
        "case
            when " ~ country_alpha2 ~ " = 'us' then
                case when " ~ offline_conversions.regexp_full_match(compact, '[0-9]{5}(?:[0-9]{4})?') ~ " then substr(" ~ compact ~ ", 1, 5) end
            else nullif(" ~ compact ~ ", '')
        end") }}
{%- endmacro %}


{#
    Postal code for Google (Data Manager AddressInfo.postalCode, sent in
    clear, never hashed). google-ads-datamanager-util's format_postal_code
    only trims; Google's "Format user data" guide adds: US zip codes as 5
    digits, or 5 digits and a 4-digit extension; other countries without an
    extension. So:
      - trim Unicode whitespace;
      - US (country_alpha2 'us'): "98101", "98101-1234" or "981011234" give
        the 5-digit zip "98101" (the guide allows 5 digits and does not say
        how to write the extension); any other US value is NULL;
      - elsewhere the code as written, trimmed: case, inner spaces and '-'
        kept ("SW1A 1AA", "100-0001" in Japan, "1000-001" in Portugal, where
        the '-' is part of the code, not an extension);
      - a SHA-256 hex digest (hashed upstream) cannot be sent in clear: NULL.
    country_alpha2 is the lower-case country code.
#}
{% macro normalize_postal_code_google(expression, country_alpha2) -%}
    {%- set trimmed = offline_conversions.trim_whitespace(expression) -%}
    case
        when {{ offline_conversions.is_sha256_hex(offline_conversions.lower_text(trimmed)) }} then null
        when {{ country_alpha2 }} = 'us' then
            case when {{ offline_conversions.regexp_full_match(trimmed, '[0-9]{5}(?:-?[0-9]{4})?') }}
                then substr({{ trimmed }}, 1, 5) end
        else {{ trimmed }}
    end
{%- endmacro %}


{#
    The key a written country is looked up by (seeds country_codes and
    country_aliases): lower-case, dots dropped, inner whitespace as one space.
#}
{% macro country_lookup_key(expression) -%}
    nullif({{ offline_conversions.lower_text(offline_conversions.regexp_replace_all(
        "replace(" ~ offline_conversions.trim_whitespace(expression) ~ ", '.', '')",
        offline_conversions.whitespace_class() ~ '+', ' ')) }}, '')
{%- endmacro %}
