-- Every raw row that cannot be used, with the reason, so nothing is dropped
-- silently: one row per unusable row (for customers exported more than once,
-- one row per customer id). Query it by source_table and reason; `detail`
-- names the offending value where that helps.

with

orders as (

    select * from {{ ref('stg_raw__orders') }}

),

orders_netted as (

    select * from {{ ref('int_orders_netted') }}

),

order_items as (

    select * from {{ ref('stg_raw__order_items') }}

),

customers as (

    select * from {{ ref('stg_raw__customers') }}

),

customers_normalized as (

    select * from {{ ref('int_customers_normalized') }}

),

order_lines_netted as (

    select * from {{ ref('int_order_lines_netted') }}

),

orders_without_id as (

    select
        'orders' as source_table,
        cast(null as {{ dbt.type_string() }}) as record_key,
        'missing_order_id' as reason,
        'customer_id=' || coalesce(customer_id, '') || ' ordered_at=' || coalesce(ordered_at_text, '') as detail
    from orders
    where order_id is null

),

unusable_orders as (

    select
        'orders' as source_table,
        order_id as record_key,
        set_aside_reason as reason,
        case set_aside_reason
            when 'unparseable_ordered_at' then 'ordered_at=' || coalesce(ordered_at_text, '')
            when 'ordered_at_in_future' then 'ordered_at=' || coalesce(ordered_at_text, '')
            when 'unknown_currency' then 'currency=' || coalesce(currency, '')
            when 'negative_total_on_completed_order' then 'item total=' || cast(raw_total as {{ dbt.type_string() }})
        end as detail
    from orders_netted
    where set_aside_reason is not null

),

orders_without_customer as (

    select
        'orders' as source_table,
        orders_netted.order_id as record_key,
        -- A walk-in sale without a customer cannot be attributed; an id the
        -- customers table lacks is a broken reference.
        case
            when orders_netted.customer_id is null then 'order_without_customer'
            else 'unknown_customer'
        end as reason,
        'customer_id=' || coalesce(orders_netted.customer_id, '') as detail
    from orders_netted
    left join customers_normalized
        on customers_normalized.customer_id = orders_netted.customer_id
    where orders_netted.set_aside_reason is null
        and customers_normalized.customer_id is null

),

items_without_order as (

    select
        'order_items' as source_table,
        coalesce(order_items.order_id, '') || ':'
        || coalesce(cast(order_items.line_number as {{ dbt.type_string() }}), '') as record_key,
        'item_without_order' as reason,
        'product_id=' || coalesce(order_items.product_id, '') as detail
    from order_items
    left join orders_netted
        on orders_netted.order_id = order_items.order_id
    where orders_netted.order_id is null

),

unreadable_items as (

    select
        'order_items' as source_table,
        coalesce(order_items.order_id, '') || ':'
        || coalesce(cast(order_items.line_number as {{ dbt.type_string() }}), '') as record_key,
        'unreadable_item_line' as reason,
        'product_id=' || coalesce(order_items.product_id, '') as detail
    from order_items
    where order_items.order_id is not null
        and (
            order_items.product_id is null
            or order_items.quantity is null
            or coalesce(order_items.line_total, order_items.unit_price * order_items.quantity) is null
        )

),

customers_without_id as (

    select
        'customers' as source_table,
        cast(null as {{ dbt.type_string() }}) as record_key,
        'missing_customer_id' as reason,
        cast(null as {{ dbt.type_string() }}) as detail
    from customers
    where customer_id is null

),

superseded_customers as (

    select
        'customers' as source_table,
        customer_id as record_key,
        'superseded_by_newer_version' as reason,
        'versions=' || cast(count(*) as {{ dbt.type_string() }}) as detail
    from customers
    where customer_id is not null
    group by customer_id
    having count(*) > 1

),

customers_without_identifier as (

    select
        'customers' as source_table,
        customer_id as record_key,
        'no_usable_identifier' as reason,
        'neither a valid email nor a valid phone' as detail
    from customers_normalized
    where not has_usable_identifier

),

-- What only the CSV files (criteo, pinterest_file, snapchat_file) cannot
-- carry: a NUL character in a text cell, a negative item price (Criteo's
-- lines). These rows still reach the REST marts; the file marts leave them out.
order_text_unfit_for_files as (

    select
        'orders' as source_table,
        order_id as record_key,
        'nul_character_in_text' as reason,
        case
            when {{ offline_conversions.has_nul_character('order_id') }} then 'order_id'
            else 'store_id'
        end || ' holds a NUL character: left out of the CSV files' as detail
    from orders_netted
    where set_aside_reason is null
        and (
            {{ offline_conversions.has_nul_character('order_id') }}
            or {{ offline_conversions.has_nul_character('store_id') }}
        )

),

item_lines_unfit_for_files as (

    select
        'order_items' as source_table,
        order_id || ':' || cast(line_number as {{ dbt.type_string() }}) as record_key,
        case
            when {{ offline_conversions.has_nul_character('product_id') }} then 'nul_character_in_text'
            else 'negative_unit_price'
        end as reason,
        case
            when {{ offline_conversions.has_nul_character('product_id') }}
                then 'product_id holds a NUL character: left out of the CSV files'
            else 'unit_price=' || cast(unit_price as {{ dbt.type_string() }}) || ': left out of the criteo file'
        end as detail
    from order_lines_netted
    where {{ offline_conversions.has_nul_character('product_id') }}
        or unit_price < 0

),

final as (

    select * from orders_without_id
    union all
    select * from unusable_orders
    union all
    select * from orders_without_customer
    union all
    select * from items_without_order
    union all
    select * from unreadable_items
    union all
    select * from customers_without_id
    union all
    select * from superseded_customers
    union all
    select * from customers_without_identifier
    union all
    select * from order_text_unfit_for_files
    union all
    select * from item_lines_unfit_for_files

)

select * from final
