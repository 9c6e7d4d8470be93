{#
    Time, portable. Every timestamp in the models is a UTC timestamp without
    time zone; offsets in the raw data are applied once, in staging.
#}

{# The anchor of every window: var as_of (date or timestamp), else today in UTC. #}
{% macro as_of() -%}
    cast('{{ offline_conversions.as_of_text() }}' as timestamp)
{%- endmacro %}

{#
    as_of as the text every model of the invocation casts (the var as given,
    else the UTC date the run started), so dbt_builds records the very value
    the models used.
#}
{% macro as_of_text() -%}
    {%- set as_of = var('as_of') -%}
    {%- if as_of is none or as_of == '' -%}
        {%- set as_of = run_started_at.strftime('%Y-%m-%d') -%}
    {%- endif -%}
    {{ return(as_of | string) }}
{%- endmacro %}


{# Parse ISO-8601 text with an offset (or Z, or none = UTC) into a UTC timestamp; NULL if unparseable. #}
{% macro parse_timestamp_utc(expression) -%}
    {{ return(adapter.dispatch('parse_timestamp_utc', 'offline_conversions')(expression)) }}
{%- endmacro %}

{% macro default__parse_timestamp_utc(expression) -%}
    cast(try_cast({{ expression }} as timestamp with time zone) as timestamp)
{%- endmacro %}

{% macro duckdb__parse_timestamp_utc(expression) -%}
    timezone('UTC', try_cast({{ expression }} as timestamptz))
{%- endmacro %}

{#
    Spark's cast reads more than DuckDB's (a bare year, '2026-11', an hour
    without minutes, 'GMT+1', a space before a numeric offset) and less (an
    offset or Z right after hh:mm). Only what DuckDB reads is let through,
    with ':00' added where the seconds are missing; the session time zone is
    UTC (profiles.yml), so a value without an offset is UTC on both.
#}
{% macro spark__parse_timestamp_utc(expression) -%}
    {%- set iso_timestamp = '[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}'
        ~ '(?:[T ][0-9]{1,2}:[0-9]{1,2}(?::[0-9]{1,2}(?:[.][0-9]+)?)?'
        ~ '(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?| [A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+)*)?)?' -%}
    case when {{ offline_conversions.regexp_full_match(expression, iso_timestamp) }}
        then try_cast(regexp_replace({{ expression }},
            {{ offline_conversions.regex_literal('([T ][0-9]{1,2}:[0-9]{1,2})(?=Z|[+-]|\\z)') }}, '$1:00') as timestamp)
    end
{%- endmacro %}


{# Parse a date written as YYYY-MM-DD or M/D/YYYY (US); NULL otherwise. #}
{% macro parse_date_flexible(expression) -%}
    {{ return(adapter.dispatch('parse_date_flexible', 'offline_conversions')(expression)) }}
{%- endmacro %}

{% macro default__parse_date_flexible(expression) -%}
    coalesce(
        try_to_date({{ expression }}, 'yyyy-MM-dd'),
        try_to_date({{ expression }}, 'M/d/yyyy')
    )
{%- endmacro %}

{% macro duckdb__parse_date_flexible(expression) -%}
    cast(try_strptime({{ expression }}, ['%Y-%m-%d', '%m/%d/%Y']) as date)
{%- endmacro %}

{# Spark: the parts are read by pattern and the date built from them; an impossible date (Feb 30) is NULL. #}
{% macro spark__parse_date_flexible(expression) -%}
    {%- set iso = '([0-9]{1,4})-([0-9]{1,2})-([0-9]{1,2})' -%}
    {%- set us = '([0-9]{1,2})/([0-9]{1,2})/([0-9]{1,4})' -%}
    case
        when {{ offline_conversions.regexp_full_match(expression, iso) }} then make_date(
            cast(regexp_extract({{ expression }}, {{ offline_conversions.regex_literal(iso) }}, 1) as int),
            cast(regexp_extract({{ expression }}, {{ offline_conversions.regex_literal(iso) }}, 2) as int),
            cast(regexp_extract({{ expression }}, {{ offline_conversions.regex_literal(iso) }}, 3) as int))
        when {{ offline_conversions.regexp_full_match(expression, us) }} then make_date(
            cast(regexp_extract({{ expression }}, {{ offline_conversions.regex_literal(us) }}, 3) as int),
            cast(regexp_extract({{ expression }}, {{ offline_conversions.regex_literal(us) }}, 1) as int),
            cast(regexp_extract({{ expression }}, {{ offline_conversions.regex_literal(us) }}, 2) as int))
    end
{%- endmacro %}


{# Whole seconds since the unix epoch of a UTC timestamp. #}
{% macro epoch_seconds(expression) -%}
    {{ return(adapter.dispatch('epoch_seconds', 'offline_conversions')(expression)) }}
{%- endmacro %}

{% macro default__epoch_seconds(expression) -%}
    cast(extract(epoch from {{ expression }}) as bigint)
{%- endmacro %}

{% macro duckdb__epoch_seconds(expression) -%}
    cast(floor(epoch({{ expression }})) as bigint)
{%- endmacro %}

{% macro spark__epoch_seconds(expression) -%}
    unix_timestamp({{ expression }})
{%- endmacro %}


{# Format a timestamp with a strftime-style pattern (%Y %m %d %H %M %S only). #}
{% macro format_timestamp(expression, format) -%}
    {{ return(adapter.dispatch('format_timestamp', 'offline_conversions')(expression, format)) }}
{%- endmacro %}

{% macro default__format_timestamp(expression, format) -%}
    strftime({{ expression }}, '{{ format }}')
{%- endmacro %}

{#
    Spark: date_format with the Java pattern of the same directives; any
    other letter is quoted ('T', 'Z'), and the pattern is written as a Spark
    literal (a quote is \', never '').
#}
{% macro spark__format_timestamp(expression, format) -%}
    {%- set directives = {'Y': 'yyyy', 'm': 'MM', 'd': 'dd', 'H': 'HH', 'M': 'mm', 'S': 'ss'} -%}
    {%- set pattern = namespace(text='', after_percent=false) -%}
    {%- for character in format -%}
        {%- if pattern.after_percent -%}
            {%- if character not in directives -%}
                {{ exceptions.raise_compiler_error("format_timestamp: %" ~ character ~ " is not supported on Spark") }}
            {%- endif -%}
            {%- set pattern.text = pattern.text ~ directives[character] -%}
            {%- set pattern.after_percent = false -%}
        {%- elif character == '%' -%}
            {%- set pattern.after_percent = true -%}
        {%- elif character == "'" -%}
            {%- set pattern.text = pattern.text ~ "''" -%}
        {%- elif character.isalpha() -%}
            {%- set pattern.text = pattern.text ~ "'" ~ character ~ "'" -%}
        {%- else -%}
            {%- set pattern.text = pattern.text ~ character -%}
        {%- endif -%}
    {%- endfor -%}
    date_format({{ expression }}, '{{ pattern.text | replace("\\", "\\\\") | replace("'", "\\'") }}')
{%- endmacro %}
