-- Criteo offline sales file: one line per item of an eligible sale in the
-- channels Criteo takes (var criteo_channels) made in the var
-- criteo_window_hours hours before as_of: the daily SFTP upload covers the
-- previous day. Criteo matches on the email, so an order without
-- one is not in the file.
--
-- This mart is the file: after delivery_key (the ledger key, not written)
-- come the file's columns in file order, each named as the file's header, and
-- the shipper writes them as they are. Criteo's "Offline sales onboarding -
-- flat file feed integration" page (support.criteo.com / help.criteo.com)
-- confirms a lower-case header, one line per product, the lines of one
-- transaction sharing event_id, and the headers user_email, event_id and
-- event_item_id; the other headers (event_timestamp, event_item_price,
-- event_item_quantity, event_currency, store_id) were seen in partner
-- documentation only: rename a column here (and in criteo_sales.yml) if
-- Criteo asks for another.
--
-- user_email: that page says emails are ingested "as SHA256 of an MD5" (raw
-- or MD5 emails are hashed by Criteo on arrival), so it is SHA-256 of the
-- lower-case hex MD5 of the normalised email (Criteo's SDK page gives the
-- vector: john.doe@gmail.com -> e13743a7... -> 000e3171...). The plain
-- SHA-256 other platforms get is not a form this file takes: an email that
-- reached us already hashed (64 hex characters) cannot be turned into
-- Criteo's form, and its orders are not in the file.
--
-- A line whose product or store id holds a NUL character (no CSV cell can
-- carry one) or whose price is negative is left out; int_rows_set_aside
-- lists it with the reason.

{%- set criteo_channels = var('criteo_channels') %}

with

orders_eligible as (

    select * from {{ ref('int_orders_eligible') }}

),

customers as (

    select * from {{ ref('int_customers_normalized') }}

),

order_lines as (

    select * from {{ ref('int_order_lines_netted') }}

),

orders_in_scope as (

    select
        orders_eligible.*,
        customers.email_criteo_sha256 as email_sha256_md5

    from orders_eligible
    inner join customers
        on customers.customer_id = orders_eligible.customer_id
    where
        {{ offline_conversions.in_window_hours('orders_eligible.ordered_at', var('criteo_window_hours')) }}
        and orders_eligible.channel in (
            {%- for channel in criteo_channels %}
            '{{ channel }}'{{ "," if not loop.last }}
            {%- endfor %}
        )
        -- An email that arrived already hashed has no Criteo form: left out.
        and customers.email_criteo_sha256 is not null

),

final as (

    select
        orders_in_scope.event_id || ':' || cast(order_lines.line_number as {{ dbt.type_string() }}) as delivery_key,
        orders_in_scope.event_id,
        {{ offline_conversions.format_timestamp('orders_in_scope.ordered_at', '%Y-%m-%dT%H:%M:%SZ') }} as event_timestamp,
        orders_in_scope.email_sha256_md5 as user_email,
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
