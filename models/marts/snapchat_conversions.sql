-- Snapchat offline events: one PURCHASE per eligible store or phone order of
-- the last snapchat_window_days, matched on hashed email or phone (digits
-- with the country code, no '+', no leading 00 or trunk zero), first and
-- last name (lower-case, accented letters kept). Two paths read it:
--
--   * the Conversions API v3 (destination `snapchat`) sends `payload`, the
--     event as Snap receives it;
--   * the offline events CSV (destination `snapchat_file`) is
--     snapchat_conversions_csv, a model over this one.
--
-- Ship one path or the other, never both: Snap would count each sale twice.
--
-- Snap's pages followed for the event (developers.snap.com, Conversions API
-- v3): "Using the API" (a `data` array of events; event_name, action_source,
-- event_time in unix seconds, event_id, user_data hashes as lists), "Offline
-- Events" (action_source OFFLINE, Snap's own value for offline sales),
-- "Parameters" (em: trimmed, lower-cased; ph: digits with the country code,
-- no leading 00, no trunk 0, no '+'; both SHA-256). custom_data follows the
-- schema of Snap's v3 Business SDK (value a number, content_ids a list of
-- strings, num_items an integer); a PURCHASE without value or currency is
-- refused ("Verify Set Up"), and both are always set here.

with

eligible_orders as (

    select * from {{ ref('int_orders_eligible') }}

),

order_lines as (

    select * from {{ ref('int_order_lines_netted') }}

),

orders_in_window as (

    select * from eligible_orders
    where
        {{ offline_conversions.in_window_days('ordered_at', var('snapchat_window_days')) }}
        and {{ offline_conversions.in_offline_channels('channel') }}
        and (email_sha256 is not null or phone_digits_sha256 is not null)

),

lines_in_window as (

    select
        order_lines.order_id,
        order_lines.product_id,
        order_lines.item_position

    from order_lines
    inner join orders_in_window
        on orders_in_window.order_id = order_lines.order_id

),

order_products as (

    select
        order_id,
        {{ offline_conversions.ordered_string_agg('product_id', ';', 'item_position') }} as item_ids,
        {{ offline_conversions.json_string_array_agg('product_id', 'item_position') }} as content_ids

    from lines_in_window
    group by order_id

),

events as (

    select
        orders_in_window.event_id as delivery_key,
        '{{ var("snapchat_event_type") }}' as event_type,
        orders_in_window.email_sha256 as hashed_email,
        orders_in_window.phone_digits_sha256 as hashed_phone,
        orders_in_window.event_time,
        {{ offline_conversions.format_timestamp('orders_in_window.ordered_at', '%Y-%m-%dT%H:%M:%SZ') }} as timestamp_utc,
        orders_in_window.net_value as price,
        orders_in_window.currency,
        orders_in_window.order_id as transaction_id,
        order_products.item_ids,
        cast(orders_in_window.net_quantity as integer) as number_items,
        -- Snap's own value for an offline sale ("Offline Events" names OFFLINE,
        -- and Meta-compatible aliases such as physical_store as equivalents).
        'OFFLINE' as action_source,
        orders_in_window.event_id,
        orders_in_window.first_name_sha256 as hashed_first_name,
        orders_in_window.last_name_sha256 as hashed_last_name,
        order_products.content_ids

    from orders_in_window
    left join order_products
        on order_products.order_id = orders_in_window.order_id

),

final as (

    -- Snap's event (the API path; the CSV path reads the typed columns): each
    -- user_data hash a one-element list, NULL ones left out; value a JSON
    -- number (decimal(18, 2), '55.00'); an empty content_ids left out.
    select
        events.*,
        {{ offline_conversions.json_object([
            ('event_name', offline_conversions.json_string('event_type')),
            ('action_source', offline_conversions.json_string('action_source')),
            ('event_time', offline_conversions.json_number('event_time')),
            ('event_id', offline_conversions.json_string('event_id')),
            ('user_data', offline_conversions.json_object([
                ('em', offline_conversions.json_string_list('hashed_email')),
                ('ph', offline_conversions.json_string_list('hashed_phone')),
                ('fn', offline_conversions.json_string_list('hashed_first_name')),
                ('ln', offline_conversions.json_string_list('hashed_last_name')),
            ])),
            ('custom_data', offline_conversions.json_object([
                ('currency', offline_conversions.json_string('currency')),
                ('value', offline_conversions.json_number('price')),
                ('order_id', offline_conversions.json_string('transaction_id')),
                ('num_items', offline_conversions.json_number('number_items')),
                ('content_ids', "nullif(content_ids, '[]')"),
            ], empty_as_null=true)),
        ]) }} as payload

    from events

)

select * from final
