{#
    A destination's window: the `days` (or `hours`) before as_of, start
    inclusive, end exclusive. An order exactly `days` before as_of is in; one
    second earlier is out; nothing at or after as_of (the future) is in.
#}
{% macro in_window_days(timestamp_expression, days) -%}
    ({{ timestamp_expression }} >= {{ dbt.dateadd('day', -1 * (days | int), offline_conversions.as_of()) }}
        and {{ timestamp_expression }} < {{ offline_conversions.as_of() }})
{%- endmacro %}

{% macro in_window_hours(timestamp_expression, hours) -%}
    ({{ timestamp_expression }} >= {{ dbt.dateadd('hour', -1 * (hours | int), offline_conversions.as_of()) }}
        and {{ timestamp_expression }} < {{ offline_conversions.as_of() }})
{%- endmacro %}
