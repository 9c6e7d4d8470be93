{#
    True for the channels that count as offline sales (var offline_channels,
    a list, or one comma-separated text): online orders already reach the
    platforms through their pixels and would be counted twice.
#}
{% macro in_offline_channels(channel_expression) -%}
    {%- set channels = var('offline_channels') -%}
    {%- if channels is string -%}
        {%- set channels = channels.split(',') | map('trim') | list -%}
    {%- endif -%}
    {{ channel_expression }} in (
        {%- for channel in channels -%}
            '{{ channel | lower }}'{{ ', ' if not loop.last }}
        {%- endfor -%}
    )
{%- endmacro %}
