-- One row per order_id with its value and units after returns, its store,
-- and the first reason (if any) it cannot be used at all.

with

orders as (

    select * from {{ ref('stg_raw__orders') }}

),

order_items as (

    select * from {{ ref('stg_raw__order_items') }}

),

order_lines as (

    select * from {{ ref('int_order_lines_netted') }}

),

stores as (

    select * from {{ ref('stg_raw__stores') }}

),

currencies as (

    select * from {{ ref('currencies') }}

),

distinct_orders as (

    -- The same row exported twice is one order; two different rows with one
    -- order_id are a conflict, set aside below.
    select distinct * from orders
    where order_id is not null

),

order_id_counts as (

    select
        order_id,
        count(*) as versions
    from distinct_orders
    group by order_id

),

item_totals as (

    select
        order_id,
        count(*) as raw_lines,
        sum(coalesce(line_total, unit_price * quantity)) as raw_total
    from order_items
    group by order_id

),

line_totals as (

    select
        order_id,
        cast(count(*) as integer) as products,
        cast(sum(quantity) as integer) as net_quantity,
        sum(line_total) as net_value
    from order_lines
    group by order_id

),

joined as (

    select
        distinct_orders.order_id,
        distinct_orders.customer_id,
        distinct_orders.ordered_at,
        distinct_orders.ordered_at_text,
        distinct_orders.utc_offset_minutes,
        distinct_orders.store_id,
        distinct_orders.channel,
        distinct_orders.currency,
        distinct_orders.status,
        stores.store_name,
        stores.city as store_city,
        stores.state as store_state,
        stores.postal_code as store_postal_code,
        stores.country as store_country,
        cast(coalesce(line_totals.products, 0) as integer) as products,
        coalesce(line_totals.net_quantity, 0) as net_quantity,
        cast(coalesce(line_totals.net_value, 0) as decimal(18, 2)) as net_value,
        item_totals.raw_lines,
        item_totals.raw_total,
        order_id_counts.versions,
        currencies.currency_code is not null as is_known_currency

    from distinct_orders
    inner join order_id_counts
        on order_id_counts.order_id = distinct_orders.order_id
    left join item_totals
        on item_totals.order_id = distinct_orders.order_id
    left join line_totals
        on line_totals.order_id = distinct_orders.order_id
    left join stores
        on stores.store_id = distinct_orders.store_id
    left join currencies
        on currencies.currency_code = distinct_orders.currency

),

final as (

    select
        *,
        case
            when versions > 1 then 'conflicting_duplicate_order_id'
            when ordered_at is null then 'unparseable_ordered_at'
            when ordered_at > cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S") }}' as timestamp)
                then 'ordered_at_in_future'
            when not is_known_currency then 'unknown_currency'
            when status = 'completed' and raw_total < 0 then 'negative_total_on_completed_order'
            when status = 'completed' and raw_lines is null then 'completed_order_without_items'
        end as set_aside_reason

    from joined

)

select * from final
