{#
    What the shipper relies on in a mart's `payload` (it sends the text as it
    is, without looking inside) and in the columns the platform ages and
    checks an event by.
#}

{# Every value parses as one JSON object. NULL fails too: a payload is never NULL. #}
{% test is_json_object(model, column_name) %}
    select {{ column_name }}
    from {{ model }}
    where not {{ offline_conversions.is_json_object(column_name) }}
{% endtest %}

{# Every non-NULL value parses as one JSON array. #}
{% test is_json_array(model, column_name) %}
    select {{ column_name }}
    from {{ model }}
    where {{ column_name }} is not null
        and not {{ offline_conversions.is_json_array(column_name) }}
{% endtest %}

{#
    Each of `members` (paths such as 'event_name' or 'custom_data.currency')
    is present in the JSON object, not null and not an empty string: what
    the platform rejects an event without.
#}
{% test json_has_members(model, column_name, members) %}
    {%- for member in members %}
    select '{{ member }}' as missing_member, {{ column_name }}
    from {{ model }}
    where coalesce({{ offline_conversions.json_member_text(column_name, member) }}, '') = ''
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
{% endtest %}

{# Unix seconds before as_of: no event is in the future of the build. #}
{% test is_before_as_of(model, column_name) %}
    select {{ column_name }}
    from {{ model }}
    where {{ column_name }} >= {{ offline_conversions.epoch_seconds(offline_conversions.as_of()) }}
{% endtest %}

{# The column is the lower-case SHA-256 hex of `of` (the changed-only fingerprint). #}
{% test is_sha256_hex_of(model, column_name, of) %}
    select {{ column_name }}, {{ of }}
    from {{ model }}
    where {{ column_name }} is null
        or {{ column_name }} <> {{ offline_conversions.sha256_hex(of) }}
{% endtest %}

{# An ISO 4217 code as platforms want it: three upper-case letters. #}
{% test is_currency_code(model, column_name) %}
    select {{ column_name }}
    from {{ model }}
    where {{ column_name }} is not null
        and not {{ offline_conversions.regexp_full_match(column_name, '[A-Z]{3}') }}
{% endtest %}
