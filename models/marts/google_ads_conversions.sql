-- Google (Data Manager API events:ingest, or the Ads API click-conversion
-- upload as a second mode): one conversion per eligible store or phone order
-- of the last google_ads_window_days. Google reads the conversion time as
-- the shop's wall clock with its offset, so the time is written back in the
-- offset the order was recorded with; the transaction id (order id) is
-- Google's dedup key.
--
-- User identifiers (Data Manager allows 10 an event; at most 3 here): the
-- email by Google's gmail rule and the E.164 phone, hashed, and the address
-- (AddressInfo: given and family name hashed, regionCode and postalCode in
-- clear) when all four of its required fields are known. The order's
-- netted lines go as cartData.items (merchantProductId, quantity,
-- unitPrice). Rules: macros/normalize/; checked against Google's own
-- libraries in tests/vendors/test_google_datamanager.py.
--
-- Store sales (dbt var google_ads_store_sales, for a STORE_SALES conversion
-- action; Data Manager's EventLocation.store_id is "Required for Store
-- Sales"): only store orders with a store_id, every one IN_STORE, with
-- eventLocation.storeId; the column store_sales tells the shipper which
-- mode the mart was built in. The Merchant Center vars (merchant id, feed
-- label, feed language) go into cartData next to the items when set.

{%- set address_complete = 'orders_in_window.given_name_google_sha256 is not null'
    ~ ' and orders_in_window.family_name_google_sha256 is not null'
    ~ ' and orders_in_window.region_code_google is not null and orders_in_window.postal_code_google is not null' %}

{%- set store_sales_var = var('google_ads_store_sales') %}
{%- if store_sales_var not in [true, false, 'true', 'false'] %}
    {{ exceptions.raise_compiler_error("var google_ads_store_sales must be true or false, not " ~ store_sales_var) }}
{%- endif %}
{%- set store_sales = store_sales_var in [true, 'true'] %}

{%- set cart_members = offline_conversions.google_ads_cart_members('cart_items') %}

with

eligible_orders as (

    select * from {{ ref('int_orders_eligible') }}

),

order_lines as (

    select * from {{ ref('int_order_lines_netted') }}

),

orders_in_window as (

    select * from eligible_orders
    where
        {{ offline_conversions.in_window_days('ordered_at', var('google_ads_window_days')) }}
        and {{ offline_conversions.in_offline_channels('channel') }}
        -- An event needs an email or a phone (the address only adds to them,
        -- as in destination_exclusions).
        and (email_google_sha256 is not null or phone_e164_sha256 is not null)
        -- Store sales: sales in a store, and the store they were made in.
        and {{ "channel = 'store' and store_id is not null" if store_sales else 'true' }}

),

lines_in_window as (

    select
        order_lines.order_id,
        order_lines.product_id,
        order_lines.quantity,
        order_lines.unit_price,
        order_lines.item_position

    from order_lines
    inner join orders_in_window
        on orders_in_window.order_id = order_lines.order_id

),

order_items as (

    -- Data Manager's CartData.items: the product id (the Merchant Center
    -- offer id), the units kept after returns, the unit price it sold at.
    select
        order_id,
        {{ offline_conversions.json_array_agg([
            ('merchantProductId', 'product_id'),
            ('quantity', 'quantity'),
            ('unitPrice', 'unit_price'),
        ], 'item_position') }} as cart_items

    from lines_in_window
    group by order_id

),

conversions as (

    select
        orders_in_window.event_id as delivery_key,
        orders_in_window.order_id as transaction_id,
        {{ offline_conversions.format_timestamp_with_offset(
            'ordered_at', 'coalesce(utc_offset_minutes, 0)', '%Y-%m-%dT%H:%M:%S') }} as event_timestamp,
        {{ offline_conversions.format_timestamp_with_offset(
            'ordered_at', 'coalesce(utc_offset_minutes, 0)', '%Y-%m-%d %H:%M:%S') }} as conversion_date_time,
        orders_in_window.net_value as conversion_value,
        orders_in_window.currency,
        {%- if store_sales %}
        'IN_STORE' as event_source,
        {%- else %}
        case orders_in_window.channel
            when 'phone' then '{{ var("google_ads_phone_event_source") }}'
            else '{{ var("google_ads_event_source") }}'
        end as event_source,
        {%- endif %}
        orders_in_window.store_id,
        {{ 'true' if store_sales else 'false' }} as store_sales,
        orders_in_window.email_google_sha256 as email_sha256,
        orders_in_window.phone_e164_sha256 as phone_sha256,
        -- AddressInfo requires all four fields: the address goes only whole.
        case when {{ address_complete }} then orders_in_window.given_name_google_sha256 end as given_name_sha256,
        case when {{ address_complete }} then orders_in_window.family_name_google_sha256 end as family_name_sha256,
        case when {{ address_complete }} then orders_in_window.region_code_google end as region_code,
        case when {{ address_complete }} then orders_in_window.postal_code_google end as postal_code,
        order_items.cart_items,
        -- Data Manager's ConsentStatus names; 'denied' cannot reach a mart
        -- (opted-out customers are not eligible) but is mapped for clarity.
        case orders_in_window.consent_status
            when 'granted' then 'CONSENT_GRANTED'
            when 'denied' then 'CONSENT_DENIED'
            else 'CONSENT_STATUS_UNSPECIFIED'
        end as ad_user_data_consent,
        case orders_in_window.consent_status
            when 'granted' then 'CONSENT_GRANTED'
            when 'denied' then 'CONSENT_DENIED'
            else 'CONSENT_STATUS_UNSPECIFIED'
        end as ad_personalization_consent,
        -- What the window and the shipper's age limit judge: the UTC time.
        orders_in_window.event_time

    from orders_in_window
    left join order_items
        on order_items.order_id = orders_in_window.order_id

),

final as (

    -- Data Manager's Event: userIdentifiers lists the email hash, the phone
    -- hash, then the address, each only when present; consent is left out
    -- when empty, cartData when the order has no lines; eventLocation for
    -- store sales only.
    select
        conversions.*,
        {{ offline_conversions.json_object([
            ('transactionId', offline_conversions.json_string('transaction_id')),
            ('eventTimestamp', offline_conversions.json_string('event_timestamp')),
            ('eventSource', offline_conversions.json_string('event_source')),
            ('conversionValue', offline_conversions.json_number('conversion_value')),
            ('currency', offline_conversions.json_string('currency')),
            ('userData', offline_conversions.json_object([
                ('userIdentifiers', offline_conversions.json_array([
                    offline_conversions.json_object(
                        [('emailAddress', offline_conversions.json_string('email_sha256'))], empty_as_null=true),
                    offline_conversions.json_object(
                        [('phoneNumber', offline_conversions.json_string('phone_sha256'))], empty_as_null=true),
                    offline_conversions.json_object([('address', offline_conversions.json_object([
                        ('givenName', offline_conversions.json_string('given_name_sha256')),
                        ('familyName', offline_conversions.json_string('family_name_sha256')),
                        ('regionCode', offline_conversions.json_string('region_code')),
                        ('postalCode', offline_conversions.json_string('postal_code')),
                    ], empty_as_null=true))], empty_as_null=true),
                ])),
            ])),
            ('consent', offline_conversions.json_object([
                ('adUserData', offline_conversions.json_string('ad_user_data_consent')),
                ('adPersonalization', offline_conversions.json_string('ad_personalization_consent')),
            ], empty_as_null=true)),
            ('cartData', "case when nullif(cart_items, '[]') is not null then "
                ~ offline_conversions.json_object(cart_members) ~ " end"),
            ('eventLocation', offline_conversions.json_object(
                [('storeId', offline_conversions.json_string('store_id'))], empty_as_null=true)
                if store_sales else 'null'),
        ]) }} as payload

    from conversions

)

select * from final
