{#
    Time, portable. Every timestamp in the models is a UTC timestamp without
    time zone; offsets in the raw data are applied once, in staging.
#}

{# The anchor of every window: var as_of (date or timestamp), else today in UTC. #}
{% macro as_of() -%}
    {%- set as_of = var('as_of', none) -%}
    {%- if as_of is none or as_of == '' -%}
        {%- set as_of = run_started_at.strftime('%Y-%m-%d') -%}
    {%- endif -%}
    cast('{{ as_of }}' as timestamp)
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

{% macro spark__parse_timestamp_utc(expression) -%}
    try_cast({{ expression }} as timestamp)
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

{% macro spark__format_timestamp(expression, format) -%}
    {%- set java = format | replace('%Y', 'yyyy') | replace('%m', 'MM') | replace('%d', 'dd')
        | replace('%H', 'HH') | replace('%M', 'mm') | replace('%S', 'ss') -%}
    date_format({{ expression }}, '{{ java | replace("T", "''T''") | replace("Z", "''Z''") }}')
{%- endmacro %}
