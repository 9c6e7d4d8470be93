{# Every non-NULL value is a SHA-256 digest written as 64 lower-case hex characters. #}
{% test is_sha256_hex(model, column_name) %}
    select {{ column_name }}
    from {{ model }}
    where {{ column_name }} is not null
        and not {{ offline_conversions.regexp_full_match(column_name, '[0-9a-f]{64}') }}
{% endtest %}

{# Every non-NULL value is a SHA-256 digest written as base64 (44 characters, UID2's form). #}
{% test is_sha256_base64(model, column_name) %}
    select {{ column_name }}
    from {{ model }}
    where {{ column_name }} is not null
        and not {{ offline_conversions.regexp_full_match(column_name, '[A-Za-z0-9+/]{43}=') }}
{% endtest %}

{# Every non-NULL value is an E.164 phone number with its '+' (6 to 15 digits: Austria's shortest national numbers make 6). #}
{% test is_e164(model, column_name) %}
    select {{ column_name }}
    from {{ model }}
    where {{ column_name }} is not null
        and not {{ offline_conversions.regexp_full_match(column_name, '\\+[1-9][0-9]{5,14}') }}
{% endtest %}
