{#
    Meta's window and age limit, per event: what meta_conversions holds and
    the two models that restate its scope (destination_coverage,
    destination_exclusions) read them here, so the rule lives in one place.

    Meta's "Using the API" page (developers.facebook.com/documentation/
    ads-commerce/conversions-api/using-the-api, "Upload Time versus Event
    Transaction Time"; the same words on "Sending Offline Events Using the
    Conversions API"): an event_time may be up to 7 days before the upload,
    and one older event fails the whole request; for events whose
    action_source is physical_store, transactions are uploaded within 62
    days of the conversion. Phone orders are `phone_call` ("Conversion was
    made over the phone", Server Event Parameters), held to 7 days.
#}

{#
    The window of an order of `channel`, in days before as_of: phone orders
    meta_phone_window_days, every other offline channel (stores)
    meta_store_window_days. The branches are those of the mart's
    action_source (a NULL channel is a store's).
#}
{% macro meta_window_days(channel) -%}
    case {{ channel }}
        when 'phone' then {{ var('meta_phone_window_days') | int }}
        else {{ var('meta_store_window_days') | int }}
    end
{%- endmacro %}

{# True when the order's time is inside its channel's window (in_window_days' edges). #}
{% macro meta_in_window(timestamp_expression, channel) -%}
    case {{ channel }}
        when 'phone' then {{ offline_conversions.in_window_days(timestamp_expression, var('meta_phone_window_days')) }}
        else {{ offline_conversions.in_window_days(timestamp_expression, var('meta_store_window_days')) }}
    end
{%- endmacro %}

{#
    Meta's hard age limit of an event, in days, by its action_source:
    physical_store the var meta_physical_store_max_event_age_days, any
    other meta_max_event_age_days. The shipper records an event older than
    this when it reaches it as expired, not sent.
#}
{% macro meta_max_event_age_days(action_source) -%}
    case
        when {{ action_source }} = 'physical_store' then {{ var('meta_physical_store_max_event_age_days') | int }}
        else {{ var('meta_max_event_age_days') | int }}
    end
{%- endmacro %}
