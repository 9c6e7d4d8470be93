-- Klaviyo profiles: the customers of braze_attributes (eligible offline
-- activity in the profile window) with their email address and phone
-- number in clear. Klaviyo's profile import needs the address itself: this
-- is the one mart where a normalised identifier, not its hash, leaves the
-- warehouse. A customer with neither is not sent.

with

braze_attributes as (

    select * from {{ ref('braze_attributes') }}

),

customers as (

    select * from {{ ref('int_customers_normalized') }}

),

contact_points as (

    -- A value that arrived already hashed upstream passes normalisation as
    -- its hash; it is no address Klaviyo could use, so it is left out.
    select
        customer_id,
        case when email_normalized like '%@%' then email_normalized end as email,
        case when phone_e164 like '+%' then phone_e164 end as phone_number

    from customers
    where is_marketing_allowed

),

final as (

    select
        braze_attributes.external_id as delivery_key,
        braze_attributes.external_id,
        contact_points.email,
        contact_points.phone_number,
        braze_attributes.last_offline_purchase_date,
        braze_attributes.offline_orders_365d,
        braze_attributes.offline_revenue_365d,
        braze_attributes.offline_revenue_currency,
        braze_attributes.last_store_id,
        braze_attributes.favourite_category

    from braze_attributes
    inner join contact_points
        on contact_points.customer_id = braze_attributes.external_id
    where contact_points.email is not null
        or contact_points.phone_number is not null

)

select * from final
