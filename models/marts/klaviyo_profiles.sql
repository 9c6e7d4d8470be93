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

profiles as (

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

),

{#- Klaviyo's profile: properties carry every attribute, a NULL as null. #}
{%- set properties = [] %}
{%- for column, encoder in [
    ('last_offline_purchase_date', 'json_string'),
    ('offline_orders_365d', 'json_number'),
    ('offline_revenue_365d', 'json_number'),
    ('offline_revenue_currency', 'json_string'),
    ('last_store_id', 'json_string'),
    ('favourite_category', 'json_string'),
] %}
    {%- do properties.append((column, offline_conversions.json_or_null(offline_conversions[encoder](column)))) %}
{%- endfor %}

payloads as (

    select
        profiles.*,
        {{ offline_conversions.json_object([
            ('type', "'\"profile\"'"),
            ('attributes', offline_conversions.json_object([
                ('external_id', offline_conversions.json_string('external_id')),
                ('email', offline_conversions.json_string("nullif(email, '')")),
                ('phone_number', offline_conversions.json_string("nullif(phone_number, '')")),
                ('properties', offline_conversions.json_object(properties)),
            ])),
        ]) }} as payload

    from profiles

),

final as (

    select
        payloads.*,
        {{ offline_conversions.sha256_hex('payload') }} as payload_sha256

    from payloads

)

select * from final
