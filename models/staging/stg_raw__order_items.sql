with

source as (

    select * from {{ offline_conversions.raw_table('order_items', [
        'order_id', 'line_number', 'product_id', 'product_name', 'category', 'brand',
        'quantity', 'unit_price', 'line_total',
    ], required=['order_id', 'product_id', 'quantity', ['unit_price', 'line_total']]) }}

),

renamed as (

    select
        {{ offline_conversions.trim_whitespace('order_id') }} as order_id,
        {{ offline_conversions.safe_cast(offline_conversions.trim_whitespace('line_number'), 'integer') }} as line_number,
        {{ offline_conversions.trim_whitespace('product_id') }} as product_id,
        {{ offline_conversions.trim_whitespace('product_name') }} as product_name,
        {{ offline_conversions.trim_whitespace('category') }} as category,
        {{ offline_conversions.trim_whitespace('brand') }} as brand,
        {{ offline_conversions.safe_cast(offline_conversions.trim_whitespace('quantity'), 'integer') }} as quantity,
        {{ offline_conversions.safe_cast(offline_conversions.trim_whitespace('unit_price'), 'decimal(18, 2)') }} as unit_price,
        {{ offline_conversions.safe_cast(offline_conversions.trim_whitespace('line_total'), 'decimal(18, 2)') }} as line_total

    from source

)

select * from renamed
