-- Orders every destination may use: completed, readable, net positive after
-- returns, at or before as_of, of a customer who can be identified and who
-- allows marketing. Each mart then applies its own window and identifiers.

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
        customers.consent_status,
        customers.email_sha256,
        customers.email_google_sha256,
        customers.email_uid2_base64,
        customers.phone_e164_sha256,
        customers.phone_digits_sha256,
        customers.phone_uid2_base64,
        customers.first_name_sha256,
        customers.last_name_sha256,
        customers.city_sha256,
        customers.state_sha256,
        customers.zip_sha256,
        customers.country_sha256,
        customers.birth_date_sha256,
        customers.gender_sha256,
        customers.external_id_sha256

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
