{#
    The members of Google Data Manager's cartData: the Merchant Center ids
    from the vars google_ads_merchant_id, google_ads_merchant_feed_label and
    google_ads_merchant_feed_language_code (each only when set; constants
    written into the SQL, so only their own characters are allowed), then
    the items (`items_column`, a JSON array; an empty one is left out).
    A list of (member, SQL expression) pairs for json_object.
#}
{% macro google_ads_cart_members(items_column) -%}
    {%- set merchant = [
        ('merchantId', 'google_ads_merchant_id', '[0-9]+', 'digits'),
        ('merchantFeedLabel', 'google_ads_merchant_feed_label', '[A-Za-z0-9_-]{1,50}', 'letters, digits, _ and -'),
        ('merchantFeedLanguageCode', 'google_ads_merchant_feed_language_code', '[a-z]{2}',
            'an ISO 639-1 code (two lower-case letters)'),
    ] -%}
    {%- set members = [] -%}
    {%- for key, name, pattern, expected in merchant -%}
        {%- set value = var(name) -%}
        {%- if value is not none and value | string | length > 0 -%}
            {%- if not modules.re.fullmatch(pattern, value | string) -%}
                {{ exceptions.raise_compiler_error("var " ~ name ~ " must be " ~ expected ~ ", not " ~ value) }}
            {%- endif -%}
            {%- do members.append((key, offline_conversions.json_string("'" ~ value ~ "'"))) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- do members.append(('items', "nullif(" ~ items_column ~ ", '[]')")) -%}
    {{ return(members) }}
{%- endmacro %}
