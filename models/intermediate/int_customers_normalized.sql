-- One row per customer: each identifier normalised by every platform's rule
-- and hashed once, here, so no mart hashes per event. Normalised values are
-- PII and stay in the warehouse; marts take the hashes (Klaviyo, whose
-- profile import needs the address itself, is the one exception).

with

customers as (

    select * from {{ ref('stg_raw__customers') }}

),

countries as (

    select * from {{ ref('int_countries_resolved') }}

),

us_states as (

    select * from {{ ref('us_states') }}

),

latest_customers as (

    -- A customer exported twice keeps its latest version; the older ones
    -- are set aside in int_rows_set_aside.
    select *
    from (
        select
            *,
            row_number() over (
                partition by customer_id
                order by updated_at desc nulls last, email, phone
            ) as version_rank
        from customers
        where customer_id is not null
    ) as ranked
    where version_rank = 1

),

default_country as (

    select * from countries
    where country_key = lower('{{ var("default_country") }}')

),

with_country as (

    select
        latest_customers.*,
        countries.country_code as known_country_code,
        coalesce(countries.country_code, default_country.country_code) as country_code,
        coalesce(countries.calling_code, default_country.calling_code) as calling_code,
        coalesce(countries.trunk_prefix, default_country.trunk_prefix) as trunk_prefix

    from latest_customers
    cross join default_country
    left join countries
        on countries.country_key = {{ offline_conversions.country_lookup_key('latest_customers.country') }}

),

normalized as (

    select
        customer_id,
        known_country_code,
        country_code,
        has_marketing_consent,
        updated_at,
        {{ offline_conversions.normalize_email('email') }} as email_normalized,
        {{ offline_conversions.normalize_phone_e164('phone', 'calling_code', 'trunk_prefix') }} as phone_e164,
        {{ offline_conversions.normalize_name('first_name') }} as first_name_normalized,
        {{ offline_conversions.normalize_name('last_name') }} as last_name_normalized,
        {{ offline_conversions.normalize_city('city') }} as city_normalized,
        {{ offline_conversions.normalize_state('state') }} as state_written,
        {{ offline_conversions.normalize_zip('postal_code', 'country_code') }} as zip_normalized,
        {{ offline_conversions.normalize_birth_date('birth_date') }} as birth_date_normalized,
        {{ offline_conversions.normalize_gender('gender') }} as gender_normalized,
        {{ offline_conversions.normalize_external_id('customer_id') }} as external_id_normalized

    from with_country

),

us_state_codes as (

    select
        {{ offline_conversions.normalize_state('state_name') }} as state_written,
        lower(state_code) as state_code
    from us_states
    union all
    select
        lower(state_code) as state_written,
        lower(state_code) as state_code
    from us_states

),

with_state as (

    -- US states are sent as their 2-letter code; a US state we cannot name
    -- is left out rather than sent as free text.
    select
        normalized.*,
        case
            when normalized.country_code = 'us' then us_state_codes.state_code
            else normalized.state_written
        end as state_normalized,
        {{ offline_conversions.normalize_email_google('normalized.email_normalized') }} as email_google_normalized,
        {{ offline_conversions.normalize_email_uid2('normalized.email_normalized') }} as email_uid2_normalized,
        {{ offline_conversions.phone_digits('normalized.phone_e164') }} as phone_digits

    from normalized
    left join us_state_codes
        on normalized.country_code = 'us'
        and us_state_codes.state_written = normalized.state_written

),

final as (

    select
        customer_id,
        country_code,
        has_marketing_consent,
        case
            when has_marketing_consent then true
            when has_marketing_consent = false then false
            else {{ 'true' if var('missing_consent_means') == 'granted' else 'false' }}
        end as is_marketing_allowed,
        case
            when has_marketing_consent then 'granted'
            when has_marketing_consent = false then 'denied'
            else 'unspecified'
        end as consent_status,
        updated_at,

        email_normalized,
        email_google_normalized,
        email_uid2_normalized,
        phone_e164,
        phone_digits,
        first_name_normalized,
        last_name_normalized,
        city_normalized,
        state_normalized,
        zip_normalized,
        birth_date_normalized,
        gender_normalized,
        external_id_normalized,

        {{ offline_conversions.hash_identifier('email_normalized') }} as email_sha256,
        {{ offline_conversions.hash_identifier('email_google_normalized') }} as email_google_sha256,
        {{ offline_conversions.hash_identifier_base64('email_uid2_normalized') }} as email_uid2_base64,
        {{ offline_conversions.hash_identifier('phone_e164') }} as phone_e164_sha256,
        {{ offline_conversions.hash_identifier('phone_digits') }} as phone_digits_sha256,
        {{ offline_conversions.hash_identifier_base64('phone_e164') }} as phone_uid2_base64,
        {{ offline_conversions.hash_identifier('first_name_normalized') }} as first_name_sha256,
        {{ offline_conversions.hash_identifier('last_name_normalized') }} as last_name_sha256,
        {{ offline_conversions.hash_identifier('city_normalized') }} as city_sha256,
        {{ offline_conversions.hash_identifier('state_normalized') }} as state_sha256,
        {{ offline_conversions.hash_identifier('zip_normalized') }} as zip_sha256,
        {{ offline_conversions.hash_identifier('country_code') }} as country_sha256,
        {{ offline_conversions.hash_identifier('birth_date_normalized') }} as birth_date_sha256,
        {{ offline_conversions.hash_identifier('gender_normalized') }} as gender_sha256,
        {{ offline_conversions.sha256_hex('external_id_normalized') }} as external_id_sha256,

        email_normalized is not null or phone_e164 is not null as has_usable_identifier

    from with_state

)

select * from final
