-- Pinterest (Conversions API with action_source 'offline', or the offline
-- CSV upload): one checkout per eligible store or phone order of the last
-- pinterest_window_days. Pinterest requires a hashed email on an event that
-- has no device id or IP + user agent, which an offline sale never has, so
-- only orders whose customer has an email are kept.
--
-- Pinterest's API reference (its v5 OpenAPI, as in the generated clients)
-- wants st as a two-letter code and zp as digits only: a state or postal
-- code of another shape (a UK postcode, a province written out) is left out
-- rather than sent in a form Pinterest does not match on. db is YYYYMMDD,
-- ge 'f' or 'm' (Pinterest also takes 'n', which no source value maps to).

with

eligible_orders as (

    select * from {{ ref('int_orders_eligible') }}

),

customers as (

    select * from {{ ref('int_customers_normalized') }}

),

order_lines as (

    select * from {{ ref('int_order_lines_netted') }}

),

orders_in_window as (

    select * from eligible_orders
    where
        {{ offline_conversions.in_window_days('ordered_at', var('pinterest_window_days')) }}
        and {{ offline_conversions.in_offline_channels('channel') }}
        and email_sha256 is not null

),

lines_in_window as (

    select
        order_lines.order_id,
        order_lines.product_id,
        order_lines.quantity,
        order_lines.unit_price,
        order_lines.item_position

    from order_lines
    inner join orders_in_window
        on orders_in_window.order_id = order_lines.order_id

),

order_products as (

    select
        order_id,
        {{ offline_conversions.json_string_array_agg('product_id', 'item_position') }} as content_ids,
        -- Pinterest takes item_price as a string, like value ('12.50').
        {{ offline_conversions.json_array_agg([
            ('id', 'product_id'),
            ('item_price', 'cast(unit_price as ' ~ dbt.type_string() ~ ')'),
            ('quantity', 'quantity'),
        ], 'item_position') }} as contents

    from lines_in_window
    group by order_id

),

events as (

    select
        orders_in_window.event_id as delivery_key,
        '{{ var("pinterest_event_name") }}' as event_name,
        '{{ var("pinterest_action_source") }}' as action_source,
        orders_in_window.event_time,
        orders_in_window.event_id,
        orders_in_window.email_sha256 as em,
        orders_in_window.phone_digits_sha256 as ph,
        orders_in_window.first_name_sha256 as fn,
        orders_in_window.last_name_sha256 as ln,
        orders_in_window.birth_date_sha256 as db,
        orders_in_window.gender_sha256 as ge,
        orders_in_window.city_sha256 as ct,
        customers.state_code_sha256 as st,
        customers.zip_digits_sha256 as zp,
        orders_in_window.country_sha256 as country,
        orders_in_window.external_id_sha256 as external_id,
        -- Pinterest wants custom_data.value as a string; a decimal(18, 2)
        -- cast to text keeps its two decimals ('55.00').
        cast(orders_in_window.net_value as {{ dbt.type_string() }}) as value,
        orders_in_window.currency,
        orders_in_window.order_id,
        cast(orders_in_window.net_quantity as integer) as num_items,
        order_products.content_ids,
        order_products.contents

    from orders_in_window
    left join customers
        on customers.customer_id = orders_in_window.customer_id
    left join order_products
        on order_products.order_id = orders_in_window.order_id

),

final as (

    -- Pinterest's event (the API path; the CSV path reads the typed columns):
    -- user_data hashes as one-element lists, value as a string, custom_data left
    -- out when empty, an empty content_ids or contents list left out.
    select
        events.*,
        {{ offline_conversions.json_object([
            ('event_name', offline_conversions.json_string('event_name')),
            ('action_source', offline_conversions.json_string('action_source')),
            ('event_time', offline_conversions.json_number('event_time')),
            ('event_id', offline_conversions.json_string('event_id')),
            ('user_data', offline_conversions.json_hash_lists(
                ['em', 'ph', 'fn', 'ln', 'db', 'ge', 'ct', 'st', 'zp', 'country', 'external_id'])),
            ('custom_data', offline_conversions.json_object([
                ('currency', offline_conversions.json_string('currency')),
                ('value', offline_conversions.json_string('value')),
                ('order_id', offline_conversions.json_string('order_id')),
                ('num_items', offline_conversions.json_number('num_items')),
                ('content_ids', "nullif(content_ids, '[]')"),
                ('contents', "nullif(contents, '[]')"),
            ], empty_as_null=true)),
        ]) }} as payload

    from events

)

select * from final
