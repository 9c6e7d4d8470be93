-- Why orders did not reach each destination's mart: one row per destination
-- and reason, counting the raw orders (an order row without an order_id
-- counts once) that are not in the mart. Every order not sent gets exactly
-- one reason, the first that applies, in this order:
--
--   1. it has no order_id or no readable time: its set-aside reason
--      (missing_order_id, unparseable_ordered_at), for every destination;
--   2. the destination's scope: outside_window (before the window, or at or
--      after as_of), excluded_channel, excluded_country (The Trade Desk);
--   3. a set-aside reason of the order (int_rows_set_aside's name:
--      unknown_currency, order_without_customer, unknown_customer, ...);
--   4. not eligible: cancelled, returned, not_completed (another status),
--      fully_returned, opted_out, consent_empty (empty marketing_consent
--      read as denied by var missing_consent_means), no_usable_identifier;
--   5. eligible and in scope but not in the mart: no_identifier_for_destination
--      (the customer lacks every identifier this destination matches on),
--      else left_out_by_mart (the mart's own rules: The Trade Desk's
--      64-character order id, a NUL character or negative price in a file).
--
-- Scope comes before the rest so each destination's counts say what its
-- window would have held. Braze and Klaviyo count orders too: an order
-- reaches them when it counts in a profile the mart carries.
-- destination_coverage sums these per destination.

{%- set criteo_channels = var('criteo_channels') -%}
{%- set the_trade_desk_countries = var('the_trade_desk_countries') -%}

{#-
    Per destination: its mart, its scope (window and channel, as the mart
    applies them), how a mart row names the order, and the identifiers it
    needs (on int_orders_eligible's columns; none: any eligible order).
-#}
{%- set offline = offline_conversions.in_offline_channels('channel') -%}
{%- set destinations = [
    {'destination': 'meta', 'mart': 'meta_conversions', 'sent': 'order_id',
        'window': offline_conversions.meta_in_window('ordered_at', 'channel'), 'channel': offline,
        'identifier': 'email_sha256 is not null or phone_digits_sha256 is not null'},
    {'destination': 'tiktok', 'mart': 'tiktok_conversions', 'sent': 'order_id',
        'window': offline_conversions.in_window_days('ordered_at', var('tiktok_window_days')), 'channel': offline,
        'identifier': 'email_sha256 is not null or phone_e164_sha256 is not null'},
    {'destination': 'the_trade_desk', 'mart': 'the_trade_desk_conversions', 'sent': 'order_id',
        'window': offline_conversions.in_window_days('ordered_at', var('the_trade_desk_window_days')), 'channel': offline,
        'identifier': 'email_uid2_base64 is not null or phone_uid2_base64 is not null'},
    {'destination': 'google_ads', 'mart': 'google_ads_conversions', 'sent': 'transaction_id',
        'window': offline_conversions.in_window_days('ordered_at', var('google_ads_window_days')), 'channel': offline,
        'identifier': 'email_google_sha256 is not null or phone_e164_sha256 is not null'},
    {'destination': 'pinterest', 'mart': 'pinterest_conversions', 'sent': 'order_id',
        'window': offline_conversions.in_window_days('ordered_at', var('pinterest_window_days')), 'channel': offline,
        'identifier': 'email_sha256 is not null'},
    {'destination': 'snapchat', 'mart': 'snapchat_conversions', 'sent': 'transaction_id',
        'window': offline_conversions.in_window_days('ordered_at', var('snapchat_window_days')), 'channel': offline,
        'identifier': 'email_sha256 is not null or phone_digits_sha256 is not null'},
    {'destination': 'criteo', 'mart': 'criteo_sales', 'sent': 'event_id',
        'window': offline_conversions.in_window_hours('ordered_at', var('criteo_window_hours')),
        'channel': "channel in ('" ~ criteo_channels | join("', '") ~ "')",
        'identifier': 'email_sha256 is not null'},
    {'destination': 'braze', 'mart': 'braze_attributes', 'sent': 'external_id',
        'window': offline_conversions.in_window_days('ordered_at', var('profile_activity_days')), 'channel': offline,
        'identifier': none},
    {'destination': 'klaviyo', 'mart': 'klaviyo_profiles', 'sent': 'external_id',
        'window': offline_conversions.in_window_days('ordered_at', var('profile_activity_days')), 'channel': offline,
        'identifier': "customer_email like '%@%' or customer_phone_is_valid"},
] %}

with

orders as (

    select * from {{ ref('stg_raw__orders') }}

),

orders_netted as (

    select * from {{ ref('int_orders_netted') }}

),

customers as (

    select * from {{ ref('int_customers_normalized') }}

),

orders_eligible as (

    select * from {{ ref('int_orders_eligible') }}

),

countries as (

    select * from {{ ref('int_countries_resolved') }}

),

{%- for destination in destinations %}

{{ destination.mart }} as (

    select * from {{ ref(destination.mart) }}

),
{%- endfor %}

orders_without_id as (

    select
        cast(null as {{ dbt.type_string() }}) as order_id,
        customer_id,
        ordered_at,
        channel,
        status,
        store_id,
        cast(null as {{ dbt.type_string() }}) as store_country,
        cast(null as decimal(18, 2)) as net_value,
        'missing_order_id' as set_aside_reason
    from orders
    where order_id is null

),

one_row_per_order as (

    -- Two different rows with one order_id are one order (set aside as a
    -- conflict): counted once.
    select
        order_id,
        customer_id,
        ordered_at,
        channel,
        status,
        store_id,
        store_country,
        net_value,
        set_aside_reason
    from (
        select
            *,
            row_number() over (
                partition by order_id
                order by ordered_at, customer_id, channel, status, store_id
            ) as version_rank
        from orders_netted
    ) as ranked
    where version_rank = 1

),

all_orders as (

    select * from one_row_per_order
    union all
    select * from orders_without_id

),

orders_described as (

    select
        all_orders.*,
        customers.customer_id is not null as is_known_customer,
        customers.consent_status,
        coalesce(customers.is_marketing_allowed, false) as is_marketing_allowed,
        coalesce(customers.has_usable_identifier, false) as has_usable_identifier,
        customers.email_normalized as customer_email,
        coalesce(customers.phone_is_valid, false) as customer_phone_is_valid,
        countries.country_code as store_country_code,
        orders_eligible.order_id is not null as is_eligible,
        orders_eligible.event_id,
        orders_eligible.email_sha256,
        orders_eligible.email_google_sha256,
        orders_eligible.email_uid2_base64,
        orders_eligible.phone_e164_sha256,
        orders_eligible.phone_digits_sha256,
        orders_eligible.phone_uid2_base64

    from all_orders
    left join customers
        on customers.customer_id = all_orders.customer_id
    left join countries
        on countries.country_key = {{ offline_conversions.country_lookup_key('all_orders.store_country') }}
    left join orders_eligible
        on orders_eligible.order_id = all_orders.order_id

),

{%- for destination in destinations %}

{{ destination.destination }}_sent as (

    {%- if destination.sent == 'event_id' %}
    select distinct orders_described.order_id
    from {{ destination.mart }}
    inner join orders_described
        on orders_described.event_id = {{ destination.mart }}.event_id
    {%- elif destination.sent == 'external_id' %}
    -- A profile carries the customer's orders of the activity window.
    select distinct orders_described.order_id
    from {{ destination.mart }}
    inner join orders_described
        on orders_described.customer_id = {{ destination.mart }}.external_id
            and orders_described.is_eligible
            and {{ destination.window }}
            and {{ destination.channel }}
    {%- else %}
    select distinct {{ destination.sent }} as order_id
    from {{ destination.mart }}
    {%- endif %}

),

{{ destination.destination }}_reasons as (

    select
        '{{ destination.destination }}' as destination,
        '{{ destination.mart }}' as mart,
        case
            when orders_described.ordered_at is null or orders_described.order_id is null
                then coalesce(orders_described.set_aside_reason, 'unparseable_ordered_at')
            when not {{ destination.window }} then 'outside_window'
            when not ({{ destination.channel }}) or orders_described.channel is null then 'excluded_channel'
            {%- if destination.destination == 'the_trade_desk' %}
            when orders_described.store_country_code is null
                or orders_described.store_country_code not in ('{{ the_trade_desk_countries | map('lower') | join("', '") }}')
                then 'excluded_country'
            {%- endif %}
            when orders_described.set_aside_reason is not null then orders_described.set_aside_reason
            when orders_described.customer_id is null then 'order_without_customer'
            when not orders_described.is_known_customer then 'unknown_customer'
            when orders_described.status = 'cancelled' then 'cancelled'
            when orders_described.status = 'returned' then 'returned'
            when orders_described.status is null or orders_described.status <> 'completed' then 'not_completed'
            when orders_described.net_value <= 0 then 'fully_returned'
            when orders_described.consent_status = 'denied' then 'opted_out'
            when not orders_described.is_marketing_allowed then 'consent_empty'
            when not orders_described.has_usable_identifier then 'no_usable_identifier'
            when not orders_described.is_eligible then 'not_eligible'
            {%- if destination.identifier is not none %}
            when not coalesce(({{ destination.identifier }}), false) then 'no_identifier_for_destination'
            {%- endif %}
            else 'left_out_by_mart'
        end as reason

    from orders_described
    left join {{ destination.destination }}_sent
        on {{ destination.destination }}_sent.order_id = orders_described.order_id
    where {{ destination.destination }}_sent.order_id is null

),
{%- endfor %}

reasons as (

    {%- for destination in destinations %}
    select * from {{ destination.destination }}_reasons
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}

),

final as (

    select
        destination,
        mart,
        reason,
        cast(count(*) as bigint) as orders

    from reasons
    group by destination, mart, reason

)

select * from final
