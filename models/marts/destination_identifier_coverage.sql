-- One row per destination and identifier it can carry: how many of the
-- mart's events (profiles, items for Criteo) carry it, and the share. Match
-- rates follow these shares, so this is where a change to a normalisation
-- rule or to the input shows what it bought. Holds no customer data.

{#-
    Each mart, and for each identifier the column (or expression) that holds
    it; an identifier a destination cannot carry is not listed. "address"
    is any part of the postal address (for Google: its address identifier,
    sent only whole); "items" is the order's product lines.
-#}
{%- set marts = [
    ('meta', 'meta_conversions', {
        'email': 'em', 'phone': 'ph', 'first_name': 'fn', 'last_name': 'ln',
        'birth_date': 'db', 'gender': 'ge', 'address': 'coalesce(ct, st, zp)',
        'country': 'country', 'external_id': 'external_id', 'items': 'contents'}),
    ('tiktok', 'tiktok_conversions', {
        'email': 'email', 'phone': 'phone', 'external_id': 'external_id', 'items': 'contents'}),
    ('the_trade_desk', 'the_trade_desk_conversions', {
        'email': "case when identifier_type = 'email' then uid2_hash end",
        'phone': "case when identifier_type = 'phone' then uid2_hash end",
        'items': 'line_items'}),
    ('google_ads', 'google_ads_conversions', {
        'email': 'email_sha256', 'phone': 'phone_sha256',
        'first_name': 'given_name_sha256', 'last_name': 'family_name_sha256',
        'address': 'postal_code', 'country': 'region_code', 'items': 'cart_items'}),
    ('pinterest', 'pinterest_conversions', {
        'email': 'em', 'phone': 'ph', 'first_name': 'fn', 'last_name': 'ln',
        'birth_date': 'db', 'gender': 'ge', 'address': 'coalesce(ct, st, zp)',
        'country': 'country', 'external_id': 'external_id', 'items': 'contents'}),
    ('snapchat', 'snapchat_conversions', {
        'email': 'hashed_email', 'phone': 'hashed_phone',
        'first_name': 'hashed_first_name', 'last_name': 'hashed_last_name', 'items': 'content_ids'}),
    ('criteo', 'criteo_sales', {'email': 'user_email', 'items': 'event_item_id'}),
    ('braze', 'braze_attributes', {'external_id': 'external_id'}),
    ('klaviyo', 'klaviyo_profiles', {
        'email': 'email', 'phone': 'phone_number', 'first_name': 'first_name',
        'last_name': 'last_name', 'address': 'coalesce(address1, city, region, zip)',
        'country': 'country', 'external_id': 'external_id'}),
] %}

with

counts as (

    {%- for destination, mart, identifiers in marts %}
    {%- set outer_loop = loop %}
    {%- for identifier, expression in identifiers.items() %}
    select
        '{{ destination }}' as destination,
        '{{ mart }}' as mart,
        '{{ identifier }}' as identifier,
        count(*) as events,
        count({{ expression }}) as events_with_identifier
    from {{ ref(mart) }}
    {%- if not (outer_loop.last and loop.last) %}
    union all
    {%- endif %}
    {%- endfor %}
    {%- endfor %}

),

final as (

    select
        destination,
        mart,
        identifier,
        cast(events as bigint) as events,
        cast(events_with_identifier as bigint) as events_with_identifier,
        case
            when events > 0 then round(cast(events_with_identifier as double) / events, 4)
        end as share

    from counts

)

select * from final
