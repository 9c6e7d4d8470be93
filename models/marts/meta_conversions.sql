-- Meta Conversions API, offline events: one Purchase per eligible store or
-- phone order inside its channel's window (store orders the last
-- meta_store_window_days, phone orders the last meta_phone_window_days),
-- with every customer hash Meta matches on. Meta rejects a whole request
-- holding one event older than that event's limit (62 days for
-- physical_store, 7 for any other action_source), so each row carries its
-- own window and its own limit (max_event_age_days, the shipper's expiry);
-- the window is applied here, on the order's UTC time (macros/meta_windows.sql).

with

eligible_orders as (

    select * from {{ ref('int_orders_eligible') }}

),

order_lines as (

    select * from {{ ref('int_order_lines_netted') }}

),

orders_in_window as (

    select * from eligible_orders
    where {{ offline_conversions.meta_in_window('ordered_at', 'channel') }}
        and {{ offline_conversions.in_offline_channels('channel') }}
        -- Meta matches offline sales on email or phone; without either the
        -- event cannot be attributed (the coverage model counts these).
        and (email_sha256 is not null or phone_digits_sha256 is not null)

),

lines_in_window as (

    select
        order_lines.order_id,
        order_lines.product_id,
        order_lines.quantity,
        order_lines.unit_price,
        order_lines.brand,
        order_lines.category,
        order_lines.item_position

    from order_lines
    inner join orders_in_window
        on orders_in_window.order_id = order_lines.order_id

),

order_contents as (

    -- Meta's content objects, members in the order of the official SDK's
    -- Content.normalize(): id, quantity, item_price, then brand and category
    -- (recommended for offline events), a NULL one left out as the SDK does.
    select
        order_id,
        {{ offline_conversions.json_array_agg_text(
            offline_conversions.json_object([
                ('id', offline_conversions.json_string('product_id')),
                ('quantity', offline_conversions.json_number('quantity')),
                ('item_price', offline_conversions.json_number('unit_price')),
                ('brand', offline_conversions.json_string('brand')),
                ('category', offline_conversions.json_string('category')),
            ]),
            'item_position') }} as contents

    from lines_in_window
    group by order_id

),

events as (

    select
        orders_in_window.event_id as delivery_key,
        '{{ var("meta_event_name") }}' as event_name,
        orders_in_window.event_time,
        orders_in_window.event_id,
        case orders_in_window.channel
            when 'phone' then '{{ var("meta_phone_action_source") }}'
            else '{{ var("meta_action_source") }}'
        end as action_source,
        orders_in_window.email_sha256 as em,
        orders_in_window.phone_digits_sha256 as ph,
        orders_in_window.first_name_sha256 as fn,
        orders_in_window.last_name_sha256 as ln,
        orders_in_window.birth_date_sha256 as db,
        orders_in_window.gender_sha256 as ge,
        orders_in_window.city_sha256 as ct,
        orders_in_window.state_sha256 as st,
        orders_in_window.zip_sha256 as zp,
        orders_in_window.country_sha256 as country,
        orders_in_window.external_id_sha256 as external_id,
        orders_in_window.net_value as value,
        orders_in_window.currency,
        orders_in_window.order_id,
        order_contents.contents,
        cast(orders_in_window.net_quantity as integer) as num_items,
        {{ offline_conversions.meta_window_days('orders_in_window.channel') }} as window_days

    from orders_in_window
    left join order_contents
        on order_contents.order_id = orders_in_window.order_id

),

final as (

    -- Meta's event: user_data always there
    -- (each hash a one-element list, NULL ones left out), custom_data left out
    -- when it would be empty, an empty contents list left out. Its age limit
    -- follows its action_source, as Meta's does.
    select
        events.*,
        {{ offline_conversions.meta_max_event_age_days('events.action_source') }} as max_event_age_days,
        {{ offline_conversions.json_object([
            ('event_name', offline_conversions.json_string('event_name')),
            ('event_time', offline_conversions.json_number('event_time')),
            ('event_id', offline_conversions.json_string('event_id')),
            ('action_source', offline_conversions.json_string('action_source')),
            ('user_data', offline_conversions.json_hash_lists(
                ['em', 'ph', 'fn', 'ln', 'db', 'ge', 'ct', 'st', 'zp', 'country', 'external_id'])),
            ('custom_data', offline_conversions.json_object([
                ('value', offline_conversions.json_number('value')),
                ('currency', offline_conversions.json_string('currency')),
                ('order_id', offline_conversions.json_string('order_id')),
                ('contents', "nullif(contents, '[]')"),
                ('num_items', offline_conversions.json_number('num_items')),
            ], empty_as_null=true)),
        ]) }} as payload

    from events

)

select * from final
