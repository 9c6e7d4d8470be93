-- Snapchat offline events (CSV upload, or Conversions API v3 with
-- action_source OFFLINE): one PURCHASE per eligible store or phone order of
-- the last snapchat_window_days, matched on hashed email or phone (digits
-- with the country code, no '+', no trunk zero).

with

eligible_orders as (

    select * from {{ ref('int_orders_eligible') }}

),

order_lines as (

    select * from {{ ref('int_order_lines_netted') }}

),

orders_in_window as (

    select * from eligible_orders
    where {{ offline_conversions.in_window_days('ordered_at', var('snapchat_window_days')) }}
        and {{ offline_conversions.in_offline_channels('channel') }}
        and (email_sha256 is not null or phone_digits_sha256 is not null)

),

lines_in_window as (

    select
        order_lines.order_id,
        order_lines.product_id,
        row_number() over (
            partition by order_lines.order_id
            order by order_lines.line_number, order_lines.product_id
        ) as item_position

    from order_lines
    inner join orders_in_window
        on orders_in_window.order_id = order_lines.order_id

),

order_products as (

    select
        order_id,
        {{ offline_conversions.ordered_string_agg('product_id', ';', 'item_position') }} as item_ids

    from lines_in_window
    group by order_id

),

final as (

    select
        orders_in_window.event_id as delivery_key,
        '{{ var("snapchat_event_type") }}' as event_type,
        orders_in_window.email_sha256 as hashed_email,
        orders_in_window.phone_digits_sha256 as hashed_phone,
        orders_in_window.event_time,
        {{ offline_conversions.format_timestamp('orders_in_window.ordered_at', '%Y-%m-%dT%H:%M:%SZ') }} as timestamp_utc,
        orders_in_window.net_value as price,
        orders_in_window.currency,
        orders_in_window.order_id as transaction_id,
        order_products.item_ids,
        cast(orders_in_window.net_quantity as integer) as number_items

    from orders_in_window
    left join order_products
        on order_products.order_id = orders_in_window.order_id

)

select * from final
