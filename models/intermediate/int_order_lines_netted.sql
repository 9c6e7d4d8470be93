-- One row per order and product: sold units less returned units (lines with
-- a negative quantity), at the price the product was sold for. Products
-- whose units all came back are left out; item lines that cannot be read
-- are set aside in int_rows_set_aside instead. item_position is the order
-- the product comes in among its order's lines (line number, then product
-- id): every mart that lists an order's items lists them in this order, so
-- the rule lives here once.

with

order_items as (

    select * from {{ ref('stg_raw__order_items') }}

),

readable_items as (

    select * from order_items
    where order_id is not null
        and product_id is not null
        and quantity is not null
        and quantity <> 0
        and coalesce(line_total, unit_price * quantity) is not null

),

netted as (

    select
        order_id,
        product_id,
        min(case when quantity > 0 then line_number end) as line_number,
        max(product_name) as product_name,
        max(category) as category,
        max(brand) as brand,
        cast(sum(quantity) as integer) as quantity,
        sum(coalesce(line_total, unit_price * quantity)) as line_total,
        max(case when quantity > 0 then unit_price end) as unit_price

    from readable_items
    group by order_id, product_id

),

kept_lines as (

    select
        order_id,
        product_id,
        coalesce(line_number, 0) as line_number,
        product_name,
        category,
        brand,
        quantity,
        cast(coalesce(unit_price, line_total / quantity) as decimal(18, 2)) as unit_price,
        cast(line_total as decimal(18, 2)) as line_total

    from netted
    where quantity > 0

),

final as (

    -- Numbered over the kept lines only, so positions run 1, 2, ... with no
    -- gap; and on the line_number written out (0 for none), as DuckDB and
    -- Spark sort a NULL at opposite ends.
    select
        *,
        cast(row_number() over (
            partition by order_id
            order by line_number, product_id
        ) as integer) as item_position

    from kept_lines

)

select * from final
