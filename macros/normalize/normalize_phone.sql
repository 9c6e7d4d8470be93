{#
    Phone numbers, read the way libphonenumber's parse reads them, with its
    metadata: the seed phone_number_rules (calling codes, national prefixes,
    possible lengths) and the same patterns as constants in
    macros/reference/phone_number_patterns.sql. The model
    int_customer_countries puts these steps together; its header states the
    whole rule.
#}

{#
    The number as written, trimmed, without an extension at the end (x123,
    ext. 45, extension 7, #12) or a "(0)" trunk hint (+44 (0)20 ...); NULL
    when a letter is left (it is not a phone number).
#}
{% macro phone_as_written(expression) -%}
    {%- set ws = offline_conversions.whitespace_class() -%}
    {%- set written = "replace(" ~ offline_conversions.regexp_replace_all(
        offline_conversions.trim_whitespace(expression),
        '(?i)' ~ ws ~ '*(?:ext(?:ension)?\\.?|x|#)' ~ ws ~ '*[0-9]+$', '') ~ ", '(0)', '')" -%}
    case when not {{ offline_conversions.regexp_full_match(written, '.*\\p{L}.*') }} then {{ written }} end
{%- endmacro %}


{# The digits of a written number, nothing else; NULL when it has none. #}
{% macro phone_digits_of(written) -%}
    nullif({{ offline_conversions.regexp_replace_all(written, '[^0-9]', '') }}, '')
{%- endmacro %}


{#
    The digits after the international prefix ('+' or '00' in front) of a
    number written internationally; NULL for a number written nationally.
    '00' is read as the international prefix everywhere (libphonenumber reads
    it so only where it is the region's own, not in North America).
#}
{% macro phone_international_digits(written, digits) -%}
    case
        when {{ written }} like '+%' then {{ digits }}
        when {{ digits }} like '00%' then nullif(substr({{ digits }}, 3), '')
    end
{%- endmacro %}


{#
    The (key, pattern) pairs of one of the generated pattern tables, every one
    of them in a build. sqlfluff (make lint) sets the var
    sqlfluff_phone_pattern_limit to render only the first few: with every
    region's patterns inlined, int_customer_countries compiles to SQL too large
    for it to parse, and the few show the model's shape as well as all would.
#}
{% macro phone_pattern_items(patterns) -%}
    {%- set limit = var('sqlfluff_phone_pattern_limit', none) -%}
    {%- set items = patterns.items() | list -%}
    {{ return(items if limit is none else items[:limit | int]) }}
{%- endmacro %}


{# Whether a national number matches its region's general pattern (region: upper-case code). #}
{% macro phone_matches_region(region, number) -%}
    case {{ region }}
    {%- for code, pattern in offline_conversions.phone_pattern_items(offline_conversions.phone_general_patterns()) %}
        when '{{ code }}' then {{ offline_conversions.regexp_full_match(number, pattern) }}
    {%- endfor %}
        else false
    end
{%- endmacro %}


{#
    Whether a number of a calling code shared by several regions is this
    region's, as libphonenumber decides: the region's leading digits start
    it, or, for a region without leading digits, it matches one of the
    region's number types.
#}
{% macro phone_region_claims(region, number) -%}
    {%- set leading = offline_conversions.phone_leading_digits() -%}
    case {{ region }}
    {%- for code, pattern in offline_conversions.phone_pattern_items(offline_conversions.phone_valid_patterns()) %}
        when '{{ code }}' then {{ offline_conversions.regexp_full_match(number,
            '(?:' ~ leading[code] ~ ')[0-9]*' if code in leading else pattern) }}
    {%- endfor %}
        else false
    end
{%- endmacro %}


{#
    Whether a national number is valid for its calling code as libphonenumber's
    is_valid_number says: it matches a number type (fixed line, mobile, toll
    free...) of one of the code's regions. Stricter than what the phone rule
    keeps: reserved ranges (the UK's 07700 900xxx for drama) are possible but
    not valid, and a platform that checks numbers (Klaviyo) refuses them.
#}
{% macro phone_is_valid_number(calling_code, number) -%}
    case {{ calling_code }}
    {%- for code, pattern in offline_conversions.phone_pattern_items(offline_conversions.phone_valid_patterns_by_calling_code()) %}
        when '{{ code }}' then {{ offline_conversions.regexp_full_match(number, pattern) }}
    {%- endfor %}
        else false
    end
{%- endmacro %}


{# Whether a number's length is one of the region's possible lengths (the seed's space-separated list). #}
{% macro phone_has_possible_length(number, possible_lengths) -%}
    ((' ' || {{ possible_lengths }} || ' ') like ('% ' || cast(length({{ number }}) as {{ offline_conversions.text_type() }}) || ' %'))
{%- endmacro %}


{#
    A national number without the region's national prefix (trunk 0, 1, 8,
    06), as libphonenumber strips it: only when the number starts with it,
    not when the number matched the region's pattern before and no longer
    does after, and (check_length) only when what is left has a possible
    length or is too long (a shorter rest keeps the prefix). `rules` is the
    alias of the joined phone_number_rules row of the region.
#}
{% macro phone_without_national_prefix(number, rules, check_length=true) -%}
    {%- set stripped = "substr(" ~ number ~ ", length(" ~ rules ~ ".national_prefix) + 1)" -%}
    case
        when {{ rules }}.national_prefix is null or {{ number }} not like {{ rules }}.national_prefix || '%'
            then {{ number }}
        when {{ offline_conversions.phone_matches_region(rules ~ '.region', number) }}
            and not {{ offline_conversions.phone_matches_region(rules ~ '.region', stripped) }}
            then {{ number }}
        {%- if check_length %}
        when not ({{ offline_conversions.phone_has_possible_length(stripped, rules ~ '.possible_lengths') }}
            or length({{ stripped }}) > {{ rules }}.max_length)
            then {{ number }}
        {%- endif %}
        else {{ stripped }}
    end
{%- endmacro %}


{# E.164 digits without the '+' (Meta, Pinterest, Snapchat); a hash passes through. #}
{% macro phone_digits(e164_expression) -%}
    case
        when {{ e164_expression }} like '+%' then substr({{ e164_expression }}, 2)
        else {{ e164_expression }}
    end
{%- endmacro %}
