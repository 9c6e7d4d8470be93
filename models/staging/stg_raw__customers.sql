with

source as (

    select * from {{ offline_conversions.raw_table('customers', [
        'customer_id', 'email', 'phone', 'first_name', 'last_name', 'birth_date',
        'gender', 'street', 'city', 'state', 'postal_code', 'country',
        'marketing_consent', 'updated_at',
    ], required=['customer_id', ['email', 'phone']]) }}

),

renamed as (

    select
        {{ offline_conversions.trim_whitespace('customer_id') }} as customer_id,
        email,
        phone,
        first_name,
        last_name,
        birth_date,
        gender,
        street,
        city,
        state,
        postal_code,
        country,
        case
            when lower({{ offline_conversions.trim_whitespace('marketing_consent') }})
                in ('true', 't', 'yes', 'y', '1') then true
            when lower({{ offline_conversions.trim_whitespace('marketing_consent') }})
                in ('false', 'f', 'no', 'n', '0') then false
        end as has_marketing_consent,
        {{ offline_conversions.parse_timestamp_utc(offline_conversions.trim_whitespace('updated_at')) }} as updated_at

    from source

)

select * from renamed
