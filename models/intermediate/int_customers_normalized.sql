-- One row per customer: each identifier normalised by every platform's rule
-- and hashed once, here, so no mart hashes per event. Normalised values are
-- PII and stay in the warehouse; marts take the hashes (Klaviyo, whose
-- profile import needs the address itself, is the one exception).

with

customers as (

    select * from {{ ref('int_customers_latest') }}

),

customer_countries as (

    -- The country and the phone in E.164, decided together there.
    select * from {{ ref('int_customer_countries') }}

),

us_states as (

    select * from {{ ref('us_states') }}

),

with_country as (

    select
        customers.*,
        customer_countries.country_code,
        customer_countries.country_source,
        customer_countries.phone_e164,
        customer_countries.phone_is_valid

    from customers
    inner join customer_countries
        on customer_countries.customer_id = customers.customer_id

),

normalized as (

    select
        customer_id,
        country_code,
        country_source,
        has_marketing_consent,
        updated_at,
        -- As written, only trimmed: Klaviyo's profile takes the name and the
        -- address in clear, as the customer wrote them.
        {{ offline_conversions.trim_whitespace('first_name') }} as first_name_trimmed,
        {{ offline_conversions.trim_whitespace('last_name') }} as last_name_trimmed,
        {{ offline_conversions.trim_whitespace('street') }} as street_trimmed,
        {{ offline_conversions.trim_whitespace('city') }} as city_trimmed,
        {{ offline_conversions.trim_whitespace('state') }} as state_trimmed,
        {{ offline_conversions.trim_whitespace('postal_code') }} as postal_code_trimmed,
        {{ offline_conversions.trim_whitespace('country') }} as country_trimmed,
        -- Google's address identifier (Data Manager AddressInfo): names only
        -- trimmed and lower-cased, the postal code as Google wants it in clear.
        {{ offline_conversions.normalize_name_google('first_name') }} as given_name_google_normalized,
        {{ offline_conversions.normalize_name_google('last_name') }} as family_name_google_normalized,
        {{ offline_conversions.normalize_postal_code_google('postal_code', 'country_code') }} as postal_code_google,
        {{ offline_conversions.normalize_email('email') }} as email_normalized,
        {{ offline_conversions.normalize_email_uid2('email') }} as email_uid2_normalized,
        phone_e164,
        phone_is_valid,
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
        country_source,
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
        first_name_trimmed,
        last_name_trimmed,
        street_trimmed,
        city_trimmed,
        state_trimmed,
        postal_code_trimmed,
        country_trimmed,

        email_normalized,
        email_google_normalized,
        email_uid2_normalized,
        phone_e164,
        phone_is_valid,
        phone_digits,
        first_name_normalized,
        last_name_normalized,
        city_normalized,
        state_normalized,
        zip_normalized,
        birth_date_normalized,
        gender_normalized,
        external_id_normalized,
        given_name_google_normalized,
        family_name_google_normalized,

        {{ offline_conversions.hash_identifier('email_normalized') }} as email_sha256,
        {{ offline_conversions.hash_identifier('email_google_normalized') }} as email_google_sha256,
        -- Criteo's file: SHA-256 of the lower-case hex MD5 of the email (its
        -- flat-file spec); an email that arrived already hashed has no such form.
        case
            when not {{ offline_conversions.is_sha256_hex('email_normalized') }}
                then {{ offline_conversions.sha256_hex(offline_conversions.md5_hex('email_normalized')) }}
        end as email_criteo_sha256,
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
        -- Pinterest: the state only as a two-letter code, the postal code only
        -- as digits (its API reference); anything else is left out for it.
        case when {{ offline_conversions.regexp_full_match('state_normalized', '[a-z]{2}') }}
                then {{ offline_conversions.hash_identifier('state_normalized') }}
        end as state_code_sha256,
        case when {{ offline_conversions.regexp_full_match('zip_normalized', '[0-9]+') }}
                then {{ offline_conversions.hash_identifier('zip_normalized') }}
        end as zip_digits_sha256,
        -- Google's address identifier (Data Manager AddressInfo): the names
        -- hashed, the region (ISO alpha-2, upper-case) and postal code in clear.
        {{ offline_conversions.hash_identifier('given_name_google_normalized') }} as given_name_google_sha256,
        {{ offline_conversions.hash_identifier('family_name_google_normalized') }} as family_name_google_sha256,
        upper(country_code) as region_code_google,
        postal_code_google,
        {{ offline_conversions.sha256_hex('external_id_normalized') }} as external_id_sha256,

        email_normalized is not null or phone_e164 is not null as has_usable_identifier

    from with_state

)

select * from final
