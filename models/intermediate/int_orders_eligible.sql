-- Orders every destination may use: completed, readable, net positive after
-- returns, at or before as_of, of a customer who can be identified and who
-- allows marketing. Each mart then applies its own window and identifiers.
--
-- A view: the eligible orders (int_orders_eligible_keyed, a table) with their
-- customer's hashes joined from int_customers_normalized, where they were
-- computed once per customer. Materialising this join would write every
-- customer hash again for every order; each mart instead joins only the
-- orders of its own window.

{{ config(materialized='view') }}

with

orders as (

    select * from {{ ref('int_orders_eligible_keyed') }}

),

customers as (

    select * from {{ ref('int_customers_normalized') }}

),

final as (

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
        orders.customer_country_code,
        orders.consent_status,
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
        customers.external_id_sha256,
        customers.given_name_google_sha256,
        customers.family_name_google_sha256,
        customers.region_code_google,
        customers.postal_code_google,
        orders.event_id,
        orders.event_time

    from orders
    inner join customers
        on customers.customer_id = orders.customer_id

)

select * from final
