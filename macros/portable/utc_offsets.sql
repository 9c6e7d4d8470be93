{#
    A UTC timestamp written as the wall clock of the offset it was recorded
    with, followed by that offset: `format` applies to the local time (the
    `format_timestamp` directives), then '+hh:mm' or '-hh:mm' (UTC is
    '+00:00'). Google reads the conversion time this way, so a sale at
    23:30 in New York keeps its local date.
#}
{% macro format_timestamp_with_offset(utc_expression, offset_minutes_expression, format) -%}
    {{ offline_conversions.format_timestamp(
        dbt.dateadd('minute', offset_minutes_expression, utc_expression), format) }}
    || {{ offline_conversions.utc_offset_text(offset_minutes_expression) }}
{%- endmacro %}


{# Minutes east of UTC as '+hh:mm' / '-hh:mm', in plain portable SQL. #}
{% macro utc_offset_text(offset_minutes_expression) -%}
    {%- set absolute_minutes = 'abs(' ~ offset_minutes_expression ~ ')' -%}
    {%- set whole_hours = 'cast(floor(' ~ absolute_minutes ~ ' / 60) as integer)' -%}
    (case when {{ offset_minutes_expression }} < 0 then '-' else '+' end
        || {{ dbt.right("'0' || cast(" ~ whole_hours ~ " as " ~ dbt.type_string() ~ ")", 2) }}
        || ':'
        || {{ dbt.right("'0' || cast(" ~ absolute_minutes ~ " - 60 * " ~ whole_hours ~ " as " ~ dbt.type_string() ~ ")", 2) }})
{%- endmacro %}
