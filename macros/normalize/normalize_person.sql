{#
    First and last name (Meta, Pinterest, Snapchat): lower-case, NFC, letters
    of any script and their accents kept, everything else (spaces,
    punctuation, digits) removed: "Valéry" -> "valéry", "O'Brien" -> "obrien".
#}
{% macro normalize_name(expression) -%}
    {{ offline_conversions.keep_if_hashed(expression, offline_conversions.letters_only(expression)) }}
{%- endmacro %}


{#
    Given and family name for Google (Data Manager AddressInfo.givenName /
    familyName, then hashed): trimmed of Unicode whitespace and lower-cased,
    nothing else: "  O'Brien-Smith " -> "o'brien-smith", "de la Cruz" ->
    "de la cruz", accents and inner spaces kept, no NFC. That is what
    google-ads-datamanager-util's Formatter.format_given_name /
    format_family_name do and what Google's "Format user data" guide asks
    (lower-case, trim); the proto's field comment says "no punctuation" too,
    but the util keeps it, and the vendor's library wins (PLATFORMS.md).
    Python lower-cases with the full Unicode mapping: 'İ' becomes 'i' plus a
    combining dot above (U+0130 -> i U+0307, the literals below), written
    so here before lower_text, which maps 'İ' to a plain 'i'. (A capital
    sigma ending a word, which Python writes as final 'ς', stays 'σ' here:
    a known difference, Greek capitals only.)
    A value already hashed upstream (64 hex) comes out as it is, and
    hash_identifier passes it through. Prefixes and suffixes ("Mrs.", "Jr.")
    are not removed: the guide asks not to send them, the util keeps them.
#}
{% macro normalize_name_google(expression) -%}
    {{ offline_conversions.lower_text(
        "replace(" ~ offline_conversions.trim_whitespace(expression) ~ ", 'İ', 'i̇')") }}
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
