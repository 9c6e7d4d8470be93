with

source as (

    -- Required: without any one of these columns no order could reach a
    -- mart (each would be set aside or not eligible), so the build fails.
    select * from {{ offline_conversions.raw_table('orders', [
        'order_id', 'customer_id', 'ordered_at', 'store_id', 'channel', 'currency', 'status',
    ], required=['order_id', 'customer_id', 'ordered_at', 'channel', 'currency', 'status']) }}

),

renamed as (

    select
        {{ offline_conversions.trim_whitespace('order_id') }} as order_id,
        {{ offline_conversions.trim_whitespace('customer_id') }} as customer_id,
        {{ offline_conversions.trim_whitespace('ordered_at') }} as ordered_at_text,
        {{ offline_conversions.parse_timestamp_utc(offline_conversions.trim_whitespace('ordered_at')) }} as ordered_at,
        {{ offline_conversions.trim_whitespace('store_id') }} as store_id,
        lower({{ offline_conversions.trim_whitespace('channel') }}) as channel,
        upper({{ offline_conversions.trim_whitespace('currency') }}) as currency,
        lower({{ offline_conversions.trim_whitespace('status') }}) as status

    from source

),

with_offset as (
    {%- set offset_parts = '([+-])([0-9]{2}):?([0-9]{2})$' %}

    -- The offset the order was written with, so a platform that wants local
    -- time with its offset (Google) gets the customer's wall clock back.
    select
        *,
        case
            when ordered_at is null then null
            when {{ offline_conversions.regexp_full_match('ordered_at_text', '.*[T ][0-9:.]+[+-][0-9]{2}:?[0-9]{2}') }}
                then (case when {{ offline_conversions.regexp_extract_group('ordered_at_text', offset_parts, 1) }} = '-' then -1 else 1 end)
                    * (
                        cast({{ offline_conversions.regexp_extract_group('ordered_at_text', offset_parts, 2) }} as integer) * 60
                        + cast({{ offline_conversions.regexp_extract_group('ordered_at_text', offset_parts, 3) }} as integer)
                    )
            else 0
        end as utc_offset_minutes

    from renamed

)

select * from with_offset
