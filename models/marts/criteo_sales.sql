-- Criteo offline sales file: one line per item of an eligible sale in the
-- channels Criteo takes (var criteo_channels, stores by default) made in the
-- var criteo_window_hours (24) hours before as_of: the daily SFTP upload
-- covers the previous day. Criteo matches on the email, so an order without
-- one is not in the file.
--
-- This mart is the file: after delivery_key (the ledger key, not written)
-- come the file's columns in file order, each named as the file's header, and
-- the shipper writes them as they are. The header names were seen in partner
-- documentation only (not confirmed by a Criteo page): rename a column here
-- (and in criteo_sales.yml) if Criteo asks for another. Lines of one order
-- share event_id, which the shipper also uses to keep an order in one file.
-- A line whose product or store id holds a NUL character (no CSV cell can
-- carry one) or whose price is negative is left out; int_rows_set_aside
-- lists it with the reason.

{%- set criteo_channels = var('criteo_channels') %}

with

orders_eligible as (

    select * from {{ ref('int_orders_eligible') }}

),

order_lines as (

    select * from {{ ref('int_order_lines_netted') }}

),

orders_in_scope as (

    select * from orders_eligible
    where {{ offline_conversions.in_window_hours('ordered_at', var('criteo_window_hours')) }}
        and channel in (
            {%- for channel in criteo_channels %}
            '{{ channel }}'{{ "," if not loop.last }}
            {%- endfor %}
        )
        and email_sha256 is not null

),

final as (

    select
        orders_in_scope.event_id || ':' || cast(order_lines.line_number as {{ dbt.type_string() }}) as delivery_key,
        orders_in_scope.event_id,
        {{ offline_conversions.format_timestamp('orders_in_scope.ordered_at', '%Y-%m-%dT%H:%M:%SZ') }} as event_timestamp,
        orders_in_scope.email_sha256 as user_email,
        order_lines.product_id as event_item_id,
        order_lines.unit_price as event_item_price,
        order_lines.quantity as event_item_quantity,
        orders_in_scope.currency as event_currency,
        orders_in_scope.store_id

    from orders_in_scope
    inner join order_lines
        on order_lines.order_id = orders_in_scope.order_id
    where order_lines.unit_price >= 0
        and not {{ offline_conversions.has_nul_character('order_lines.product_id') }}
        and not {{ offline_conversions.has_nul_character('orders_in_scope.store_id') }}

)

select * from final
