-- The Trade Desk offline conversions: one item per eligible sale in a store
-- of an allowed country (US only by default) and per UID2 identifier, so an
-- order whose customer has both an email and a phone gives two items. The
-- UID2 hashes are ready here; mapping them to raw UID2s is the shipper's job
-- (the identity-map service needs the operator's secret).

{%- set allowed_countries = var('the_trade_desk_countries') %}

with

orders_eligible as (

    select * from {{ ref('int_orders_eligible') }}

),

order_lines as (

    select * from {{ ref('int_order_lines_netted') }}

),

countries as (

    select * from {{ ref('int_countries_resolved') }}

),

us_states as (

    select * from {{ ref('us_states') }}

),

orders_in_scope as (

    -- TTD takes offline sales only, from its allowed countries (judged by
    -- the store, not the customer), within its window. Its OrderId field
    -- holds at most 64 characters: a longer order id is left out rather
    -- than cut, since a cut id could collide with another order's.
    select
        orders_eligible.order_id,
        orders_eligible.event_id,
        orders_eligible.ordered_at,
        orders_eligible.net_value,
        orders_eligible.currency,
        orders_eligible.store_id,
        orders_eligible.store_city,
        orders_eligible.store_state,
        orders_eligible.email_uid2_base64,
        orders_eligible.phone_uid2_base64,
        countries.country_code as store_country_code,
        countries.country_alpha3 as store_country_alpha3

    from orders_eligible
    inner join countries
        on countries.country_key = {{ offline_conversions.country_lookup_key('orders_eligible.store_country') }}
    where
        {{ offline_conversions.in_window_days('orders_eligible.ordered_at', var('the_trade_desk_window_days')) }}
        and countries.country_code in (
            {%- for country in allowed_countries %}
            '{{ country | lower }}'{{ "," if not loop.last }}
            {%- endfor %}
        )
        and {{ offline_conversions.in_offline_channels('orders_eligible.channel') }}
        and length(orders_eligible.order_id) <= 64

),

state_spellings as (

    -- A US state written as its name or its code ("New York", "N.Y.", "ny")
    -- is sent as the upper-case 2-letter code.
    select
        {{ offline_conversions.normalize_state('state_name') }} as state_key,
        upper(state_code) as state_code
    from us_states
    union
    select
        {{ offline_conversions.normalize_state('state_code') }} as state_key,
        upper(state_code) as state_code
    from us_states

),

orders_with_region as (

    select
        orders_in_scope.*,
        coalesce(state_spellings.state_code, orders_in_scope.store_state) as region

    from orders_in_scope
    left join state_spellings
        on orders_in_scope.store_country_code = 'us'
            and state_spellings.state_key = {{ offline_conversions.normalize_state('orders_in_scope.store_state') }}

),

line_items as (

    select
        order_lines.order_id,
        {{ offline_conversions.json_array_agg([
            ('item_code', 'order_lines.product_id'),
            ('name', 'order_lines.product_name'),
            ('qty', 'order_lines.quantity'),
            ('price', 'cast(order_lines.unit_price as ' ~ dbt.type_string() ~ ')'),
            ('cat', 'order_lines.category'),
        ], 'order_lines.item_position') }} as line_items

    from order_lines
    inner join orders_in_scope
        on orders_in_scope.order_id = order_lines.order_id
    group by order_lines.order_id

),

payload_line_items as (

    -- LineItems as the payload carries them: every field a string (the
    -- ttd-data SDK types them so), a NULL field left out.
    select
        order_lines.order_id,
        {{ offline_conversions.json_array_agg_text(
            offline_conversions.json_object([
                ('item_code', offline_conversions.json_string('order_lines.product_id')),
                ('name', offline_conversions.json_string('order_lines.product_name')),
                ('qty', offline_conversions.json_string('cast(order_lines.quantity as ' ~ dbt.type_string() ~ ')')),
                ('price', offline_conversions.json_string('cast(order_lines.unit_price as ' ~ dbt.type_string() ~ ')')),
                ('cat', offline_conversions.json_string('order_lines.category')),
            ]),
            'order_lines.item_position') }} as line_items_json

    from order_lines
    inner join orders_in_scope
        on orders_in_scope.order_id = order_lines.order_id
    group by order_lines.order_id

),

identifiers as (

    select
        order_id,
        'email' as identifier_type,
        email_uid2_base64 as uid2_hash
    from orders_in_scope
    where email_uid2_base64 is not null
    union all
    select
        order_id,
        'phone' as identifier_type,
        phone_uid2_base64 as uid2_hash
    from orders_in_scope
    where phone_uid2_base64 is not null

),

items as (

    select
        orders_with_region.event_id || ':' || identifiers.identifier_type as delivery_key,
        orders_with_region.event_id,
        orders_with_region.order_id,
        identifiers.identifier_type,
        identifiers.uid2_hash,
        {{ offline_conversions.format_timestamp('orders_with_region.ordered_at', '%Y-%m-%dT%H:%M:%SZ') }} as timestamp_utc,
        cast(orders_with_region.net_value as {{ dbt.type_string() }}) as value,
        orders_with_region.currency as value_currency,
        '{{ var("the_trade_desk_event_name") }}' as event_name,
        orders_with_region.store_country_alpha3 as country,
        orders_with_region.region,
        orders_with_region.store_city as city,
        orders_with_region.store_id as merchant_id,
        line_items.line_items,
        {{ offline_conversions.epoch_seconds('orders_with_region.ordered_at') }} as event_time,
        payload_line_items.line_items_json

    from identifiers
    inner join orders_with_region
        on orders_with_region.order_id = identifiers.order_id
    left join line_items
        on line_items.order_id = identifiers.order_id
    left join payload_line_items
        on payload_line_items.order_id = identifiers.order_id

),

final as (

    -- The item without TrackingTagId (a shipper setting) and UID2 (mapped
    -- from uid2_hash by the shipper): it splices both in.
    select
        delivery_key,
        event_id,
        order_id,
        identifier_type,
        uid2_hash,
        timestamp_utc,
        value,
        value_currency,
        event_name,
        country,
        region,
        city,
        merchant_id,
        line_items,
        event_time,
        {{ offline_conversions.json_object([
            ('TimestampUtc', offline_conversions.json_string('timestamp_utc')),
            ('OrderId', offline_conversions.json_string('order_id')),
            ('Value', offline_conversions.json_string('value')),
            ('ValueCurrency', offline_conversions.json_string('value_currency')),
            ('EventName', offline_conversions.json_string('event_name')),
            ('Country', offline_conversions.json_string('country')),
            ('Region', offline_conversions.json_string('region')),
            ('City', offline_conversions.json_string('city')),
            ('MerchantId', offline_conversions.json_string('merchant_id')),
            ('LineItems', "nullif(line_items_json, '[]')"),
        ]) }} as payload

    from items

)

select * from final
