-- TikTok Events API 2.0, offline event set: one CompletePayment per eligible
-- store or phone order of the last tiktok_window_days. TikTok hashes the
-- phone as E.164 with its '+', unlike Meta, and fails a whole batch on one
-- bad event, so every row here already has an email or a phone.

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
        {{ offline_conversions.in_window_days('ordered_at', var('tiktok_window_days')) }}
        and {{ offline_conversions.in_offline_channels('channel') }}
        and (email_sha256 is not null or phone_e164_sha256 is not null)

),

lines_in_window as (

    select
        order_lines.order_id,
        order_lines.product_id,
        order_lines.product_name,
        order_lines.category,
        order_lines.brand,
        order_lines.unit_price,
        order_lines.quantity,
        order_lines.item_position

    from order_lines
    inner join orders_in_window
        on orders_in_window.order_id = order_lines.order_id

),

order_contents as (

    select
        order_id,
        {{ offline_conversions.json_array_agg([
            ('content_id', 'product_id'),
            ('content_name', 'product_name'),
            ('content_category', 'category'),
            ('brand', 'brand'),
            ('price', 'unit_price'),
            ('quantity', 'quantity'),
        ], 'item_position') }} as contents

    from lines_in_window
    group by order_id

),

events as (

    select
        orders_in_window.event_id as delivery_key,
        '{{ var("tiktok_event_name") }}' as event,
        orders_in_window.event_time,
        orders_in_window.event_id,
        orders_in_window.email_sha256 as email,
        orders_in_window.phone_e164_sha256 as phone,
        orders_in_window.external_id_sha256 as external_id,
        orders_in_window.net_value as value,
        orders_in_window.currency,
        orders_in_window.order_id,
        orders_in_window.store_id as shop_id,
        'product' as content_type,
        order_contents.contents

    from orders_in_window
    left join order_contents
        on order_contents.order_id = orders_in_window.order_id

),

final as (

    -- TikTok's event: user always there (plain hashes, NULL ones left out),
    -- properties left out when empty, an empty contents list left out.
    select
        events.*,
        {{ offline_conversions.json_object([
            ('event', offline_conversions.json_string('event')),
            ('event_time', offline_conversions.json_number('event_time')),
            ('event_id', offline_conversions.json_string('event_id')),
            ('user', offline_conversions.json_object([
                ('email', offline_conversions.json_string('email')),
                ('phone', offline_conversions.json_string('phone')),
                ('external_id', offline_conversions.json_string('external_id')),
            ])),
            ('properties', offline_conversions.json_object([
                ('value', offline_conversions.json_number('value')),
                ('currency', offline_conversions.json_string('currency')),
                ('order_id', offline_conversions.json_string('order_id')),
                ('shop_id', offline_conversions.json_string('shop_id')),
                ('content_type', offline_conversions.json_string('content_type')),
                ('contents', "nullif(contents, '[]')"),
            ], empty_as_null=true)),
        ]) }} as payload

    from events

)

select * from final
