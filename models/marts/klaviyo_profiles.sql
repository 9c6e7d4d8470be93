-- Klaviyo profiles: the customers of braze_attributes (eligible offline
-- activity in the profile window) with their email address and phone
-- number in clear. Klaviyo's profile import needs the address itself: this
-- is the one mart where a normalised identifier, not its hash, leaves the
-- warehouse. A customer with neither is not sent.
--
-- First and last name and the postal address (Klaviyo's profile `location`:
-- address1, city, region, zip, country) go as the customer wrote them, only
-- trimmed: they are shown to people in Klaviyo, not matched on. The country
-- is its English name (seed country_codes) when the written country is one
-- we know, else as written. A value that arrived already hashed upstream is
-- left out, as for the email.

with

braze_attributes as (

    select * from {{ ref('braze_attributes') }}

),

customers as (

    select * from {{ ref('int_customers_normalized') }}

),

countries as (

    select * from {{ ref('int_countries_resolved') }}

),

country_codes as (

    select * from {{ ref('country_codes') }}

),

{%- set written = [
    ('first_name', 'first_name_trimmed'),
    ('last_name', 'last_name_trimmed'),
    ('address1', 'street_trimmed'),
    ('city', 'city_trimmed'),
    ('region', 'state_trimmed'),
    ('zip', 'postal_code_trimmed'),
] %}

contact_points as (

    -- A value that arrived already hashed upstream passes normalisation as
    -- its hash; it is no address Klaviyo could use, so it is left out.
    select
        customers.customer_id,
        case when customers.email_normalized like '%@%' then customers.email_normalized end as email,
        -- Klaviyo refuses a number libphonenumber calls invalid (and the whole
        -- profile with it): only valid ones are sent.
        case when customers.phone_is_valid then customers.phone_e164 end as phone_number,
        {%- for column, source in written %}
        case when not {{ offline_conversions.is_sha256_hex(offline_conversions.lower_text('customers.' ~ source)) }}
                then customers.{{ source }}
        end as {{ column }},
        {%- endfor %}
        case when not {{ offline_conversions.is_sha256_hex(offline_conversions.lower_text('customers.country_trimmed')) }}
                then coalesce(country_codes.country_name, customers.country_trimmed)
        end as country

    from customers
    left join countries
        on countries.country_key = {{ offline_conversions.country_lookup_key('customers.country_trimmed') }}
    left join country_codes
        on lower(country_codes.alpha2) = countries.country_code
    where customers.is_marketing_allowed

),

profiles as (

    select
        braze_attributes.external_id as delivery_key,
        braze_attributes.external_id,
        contact_points.email,
        contact_points.phone_number,
        contact_points.first_name,
        contact_points.last_name,
        contact_points.address1,
        contact_points.city,
        contact_points.region,
        contact_points.zip,
        contact_points.country,
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

{#-
    Klaviyo's profile: identifiers, names and location only when present (an
    empty location left out), properties carry every attribute, a NULL as null.
#}
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
                ('first_name', offline_conversions.json_string('first_name')),
                ('last_name', offline_conversions.json_string('last_name')),
                ('location', offline_conversions.json_object([
                    ('address1', offline_conversions.json_string('address1')),
                    ('city', offline_conversions.json_string('city')),
                    ('region', offline_conversions.json_string('region')),
                    ('zip', offline_conversions.json_string('zip')),
                    ('country', offline_conversions.json_string('country')),
                ], empty_as_null=true)),
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
