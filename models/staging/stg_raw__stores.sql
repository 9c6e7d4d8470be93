with

source as (

    select * from {{ offline_conversions.raw_table('stores', [
        'store_id', 'name', 'city', 'state', 'postal_code', 'country',
    ], required=['store_id']) }}

),

renamed as (

    select
        {{ offline_conversions.trim_whitespace('store_id') }} as store_id,
        {{ offline_conversions.trim_whitespace('name') }} as store_name,
        {{ offline_conversions.trim_whitespace('city') }} as city,
        {{ offline_conversions.trim_whitespace('state') }} as state,
        {{ offline_conversions.trim_whitespace('postal_code') }} as postal_code,
        {{ offline_conversions.trim_whitespace('country') }} as country

    from source

)

select * from renamed
