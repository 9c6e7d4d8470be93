{#
    What the file destinations (criteo_sales, pinterest_conversions_csv,
    snapchat_conversions_csv) rely on in a column: the shipper writes each
    cell as it is, without looking at it.
#}

{# No value holds a NUL character: a CSV cell cannot carry one. #}
{% test has_no_nul_character(model, column_name) %}
    select {{ column_name }}
    from {{ model }}
    where {{ offline_conversions.has_nul_character(column_name) }}
{% endtest %}

{# No value is an empty string (a NULL is an empty cell, and may be tested with not_null). #}
{% test is_not_empty_text(model, column_name) %}
    select {{ column_name }}
    from {{ model }}
    where {{ column_name }} = ''
{% endtest %}

{#
    Unix seconds before as_of and, when `days` is given, no more than `days`
    days before it: the platform's age limit, which the mart's window stays
    within.
#}
{% test is_unix_seconds_in_age_limit(model, column_name, days=none) %}
    select {{ column_name }}
    from {{ model }}
    where {{ column_name }} >= {{ offline_conversions.epoch_seconds(offline_conversions.as_of()) }}
    {%- if days is not none %}
        or {{ column_name }} < {{ offline_conversions.epoch_seconds(dbt.dateadd('day', -1 * (days | int), offline_conversions.as_of())) }}
    {%- endif %}
{% endtest %}

{#
    ISO-8601 UTC text, `YYYY-MM-DDTHH:MM:SSZ`, before as_of and, when `days`
    is given, no more than `days` days before it. Text in this form sorts as
    time does, so the range is compared as text.
#}
{% test is_iso_utc_in_age_limit(model, column_name, days=none) %}
    select {{ column_name }}
    from {{ model }}
    where {{ column_name }} is not null
        and (
            not {{ offline_conversions.regexp_full_match(column_name, '[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z') }}
            or {{ column_name }} >= {{ offline_conversions.format_timestamp(offline_conversions.as_of(), '%Y-%m-%dT%H:%M:%SZ') }}
            {%- if days is not none %}
            or {{ column_name }} < {{ offline_conversions.format_timestamp(dbt.dateadd('day', -1 * (days | int), offline_conversions.as_of()), '%Y-%m-%dT%H:%M:%SZ') }}
            {%- endif %}
        )
{% endtest %}
