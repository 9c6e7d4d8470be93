-- Orders every destination may use (see int_orders_eligible), keyed by
-- customer_id, with the stable event_id hashed here, once per order. The
-- customer's hashes are not copied onto every order: int_orders_eligible
-- joins them from int_customers_normalized (hashed once per customer).

with

orders as (

    select * from {{ ref('int_orders_netted') }}

),

customers as (

    select * from {{ ref('int_customers_normalized') }}

),

eligible as (

    select
        orders.order_id,
        orders.customer_id,
        orders.ordered_at,
        orders.utc_offset_minutes,
        orders.store_id,
        orders.store_name,
        orders.store_city,
        orders.store_state,
        orders.store_postal_code,
        orders.store_country,
        orders.channel,
        orders.currency,
        orders.products,
        orders.net_quantity,
        orders.net_value,
        customers.country_code as customer_country_code,
        customers.consent_status

    from orders
    inner join customers
        on customers.customer_id = orders.customer_id
    where orders.set_aside_reason is null
        and orders.status = 'completed'
        and orders.net_value > 0
        and orders.ordered_at < {{ offline_conversions.as_of() }}
        and customers.is_marketing_allowed
        and customers.has_usable_identifier

),

final as (

    select
        *,
        -- Stable across rebuilds: the same order always gives the same id,
        -- so a platform recognises a resend as the same event.
        {{ offline_conversions.sha256_hex("'offline-order:' || order_id") }} as event_id,
        {{ offline_conversions.epoch_seconds('ordered_at') }} as event_time

    from eligible

)

select * from final
