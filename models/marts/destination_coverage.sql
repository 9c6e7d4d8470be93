-- One row per destination: how many eligible orders (customers, for the
-- profile destinations) its window and filters let through, how many rows
-- and orders its mart carries, and how often each identifier is present (a
-- proxy for the match rate). What is lost between eligible_orders and
-- orders_sent is the orders without an identifier that destination takes.
-- The demo summary reads it. The shares are destination_identifier_coverage's,
-- one column per identifier, so which column of a mart carries an identifier
-- is written in that model only.

{#- The destinations whose scope is a window of days over offline sales
    (Meta's depends on the order's channel: macros/meta_windows.sql). -#}
{%- set windowed_destinations = [
    ('meta', offline_conversions.meta_in_window('ordered_at', 'channel')),
    ('tiktok', offline_conversions.in_window_days('ordered_at', var('tiktok_window_days'))),
    ('google_ads', offline_conversions.in_window_days('ordered_at', var('google_ads_window_days'))),
    ('pinterest', offline_conversions.in_window_days('ordered_at', var('pinterest_window_days'))),
    ('snapchat', offline_conversions.in_window_days('ordered_at', var('snapchat_window_days'))),
] -%}

{#-
    Each mart and the column orders_sent counts distinct values of: the
    order (Criteo's event_id is one per order), or the customer for the
    profile destinations.
-#}
{%- set marts = [
    {'destination': 'meta', 'mart': 'meta_conversions', 'sent_key': 'order_id'},
    {'destination': 'tiktok', 'mart': 'tiktok_conversions', 'sent_key': 'order_id'},
    {'destination': 'the_trade_desk', 'mart': 'the_trade_desk_conversions', 'sent_key': 'order_id'},
    {'destination': 'google_ads', 'mart': 'google_ads_conversions', 'sent_key': 'transaction_id'},
    {'destination': 'pinterest', 'mart': 'pinterest_conversions', 'sent_key': 'order_id'},
    {'destination': 'snapchat', 'mart': 'snapchat_conversions', 'sent_key': 'transaction_id'},
    {'destination': 'criteo', 'mart': 'criteo_sales', 'sent_key': 'event_id'},
    {'destination': 'braze', 'mart': 'braze_attributes', 'sent_key': 'external_id'},
    {'destination': 'klaviyo', 'mart': 'klaviyo_profiles', 'sent_key': 'external_id'},
] -%}

{%- set the_trade_desk_countries = var('the_trade_desk_countries') -%}
{%- set criteo_channels = var('criteo_channels') %}

with

orders_eligible as (

    select * from {{ ref('int_orders_eligible') }}

),

countries as (

    select * from {{ ref('int_countries_resolved') }}

),

rows_set_aside as (

    select * from {{ ref('int_rows_set_aside') }}

),

destination_exclusions as (

    select * from {{ ref('destination_exclusions') }}

),

identifier_coverage as (

    select * from {{ ref('destination_identifier_coverage') }}

),

eligible_counts as (

    -- Each destination's own window and channel or country filters, as its
    -- mart applies them, but before its identifiers are required.
    {%- for destination, in_window in windowed_destinations %}
    select
        '{{ destination }}' as destination,
        count(*) as eligible_orders
    from orders_eligible
    where
        {{ in_window }}
        and {{ offline_conversions.in_offline_channels('channel') }}
    union all
    {%- endfor %}
    select
        'the_trade_desk' as destination,
        count(*) as eligible_orders
    from orders_eligible
    inner join countries
        on countries.country_key = {{ offline_conversions.country_lookup_key('orders_eligible.store_country') }}
    where
        {{ offline_conversions.in_window_days('orders_eligible.ordered_at', var('the_trade_desk_window_days')) }}
        and {{ offline_conversions.in_offline_channels('orders_eligible.channel') }}
        and countries.country_code in ({{ offline_conversions.sql_text_list(the_trade_desk_countries | map('lower')) }})
    union all
    select
        'criteo' as destination,
        count(*) as eligible_orders
    from orders_eligible
    where
        {{ offline_conversions.in_window_hours('ordered_at', var('criteo_window_hours')) }}
        and channel in ({{ offline_conversions.sql_text_list(criteo_channels) }})
    {%- for destination in ['braze', 'klaviyo'] %}
    union all
    select
        '{{ destination }}' as destination,
        count(distinct customer_id) as eligible_orders
    from orders_eligible
    where
        {{ offline_conversions.in_window_days('ordered_at', var('profile_activity_days')) }}
        and {{ offline_conversions.in_offline_channels('channel') }}
    {%- endfor %}

),

mart_counts as (

    {%- for mart in marts %}
    select
        '{{ mart.destination }}' as destination,
        '{{ mart.mart }}' as mart,
        count(*) as events,
        count(distinct {{ mart.sent_key }}) as orders_sent
    from {{ ref(mart.mart) }}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}

),

identifier_shares as (

    -- An identifier the destination cannot carry has no row there, so its
    -- share is NULL, as is every share of an empty mart.
    select
        destination,
        max(case when identifier = 'email' then share end) as share_with_email,
        max(case when identifier = 'phone' then share end) as share_with_phone,
        max(case when identifier = 'external_id' then share end) as share_with_external_id,
        max(case when identifier = 'address' then share end) as share_with_address
    from identifier_coverage
    group by destination

),

set_aside_by_reason as (

    select
        reason,
        count(*) as set_aside_rows
    from rows_set_aside
    group by reason

),

set_aside_summary as (

    select
        coalesce(sum(set_aside_rows), 0) as rows_set_aside,
        {{ offline_conversions.ordered_string_agg(
            "reason || ': ' || cast(set_aside_rows as " ~ dbt.type_string() ~ ")", ', ', 'reason') }} as set_aside_reasons
    from set_aside_by_reason

),

not_sent_summary as (

    select
        destination,
        sum(orders) as orders_not_sent,
        {{ offline_conversions.ordered_string_agg(
            "reason || ': ' || cast(orders as " ~ dbt.type_string() ~ ")", ', ', 'reason') }} as not_sent_reasons
    from destination_exclusions
    group by destination

),

final as (

    select
        mart_counts.destination,
        mart_counts.mart,
        cast(eligible_counts.eligible_orders as bigint) as eligible_orders,
        cast(mart_counts.events as bigint) as events,
        cast(mart_counts.orders_sent as bigint) as orders_sent,
        identifier_shares.share_with_email,
        identifier_shares.share_with_phone,
        identifier_shares.share_with_external_id,
        identifier_shares.share_with_address,
        cast(set_aside_summary.rows_set_aside as bigint) as rows_set_aside,
        set_aside_summary.set_aside_reasons,
        cast(coalesce(not_sent_summary.orders_not_sent, 0) as bigint) as orders_not_sent,
        not_sent_summary.not_sent_reasons

    from mart_counts
    inner join eligible_counts
        on eligible_counts.destination = mart_counts.destination
    left join identifier_shares
        on identifier_shares.destination = mart_counts.destination
    cross join set_aside_summary
    left join not_sent_summary
        on not_sent_summary.destination = mart_counts.destination

)

select * from final
