-- sqlfluff:indentation:template_blocks_indent:true
-- Braze custom attributes: one row per customer with at least one eligible
-- offline sale (channels in var offline_channels) in the var
-- profile_activity_days days before as_of. Braze bills every changed
-- data point, so values are chosen to change only when the customer buys
-- again: dates rather than timestamps, revenue rounded down to a band.
-- klaviyo_profiles reads this model, so both profile destinations carry the
-- same values. The date columns stay `YYYY-MM-DD` (what klaviyo_profiles and
-- people read); Braze's payload carries each as a full ISO 8601 time,
-- midnight UTC of that date, so Braze stores a time attribute, not a string.

with

orders_eligible as (

    select * from {{ ref('int_orders_eligible') }}

),

order_lines as (

    select * from {{ ref('int_order_lines_netted') }}

),

recent_orders as (

    select
        customer_id,
        order_id,
        ordered_at,
        utc_offset_minutes,
        store_id,
        currency,
        net_value

    from orders_eligible
    where
        {{ offline_conversions.in_window_days('ordered_at', var('profile_activity_days')) }}
        and {{ offline_conversions.in_offline_channels('channel') }}

),

latest_orders as (

    select *
    from (
        select
            customer_id,
            ordered_at,
            utc_offset_minutes,
            currency,
            row_number() over (
                partition by customer_id
                order by ordered_at desc, order_id desc
            ) as recency_rank
        from recent_orders
    ) as ranked
    where recency_rank = 1

),

latest_store_visits as (

    -- The last store the customer bought in; a phone order without a store
    -- does not erase it.
    select *
    from (
        select
            customer_id,
            store_id,
            row_number() over (
                partition by customer_id
                order by ordered_at desc, order_id desc
            ) as recency_rank
        from recent_orders
        where store_id is not null
    ) as ranked
    where recency_rank = 1

),

order_totals as (

    -- Revenue adds up the orders in the currency of the latest order only:
    -- customers rarely mix currencies, and a sum across currencies would
    -- mean nothing.
    select
        recent_orders.customer_id,
        count(*) as offline_orders,
        sum(
            case when recent_orders.currency = latest_orders.currency then recent_orders.net_value end
        ) as offline_revenue

    from recent_orders
    inner join latest_orders
        on latest_orders.customer_id = recent_orders.customer_id
    group by recent_orders.customer_id

),

category_units as (

    select
        recent_orders.customer_id,
        order_lines.category,
        sum(order_lines.quantity) as units

    from recent_orders
    inner join order_lines
        on order_lines.order_id = recent_orders.order_id
    where order_lines.category is not null
    group by recent_orders.customer_id, order_lines.category

),

favourite_categories as (

    select *
    from (
        select
            customer_id,
            category,
            row_number() over (
                partition by customer_id
                order by units desc, category asc
            ) as preference_rank
        from category_units
    ) as ranked
    where preference_rank = 1

),

profiles as (

    select
        latest_orders.customer_id as delivery_key,
        latest_orders.customer_id as external_id,
        -- The date of the latest sale on the customer's own clock (the
        -- offset the order was written with), as a marketer reads it.
        {{ offline_conversions.format_timestamp(
            dbt.dateadd('minute', 'coalesce(latest_orders.utc_offset_minutes, 0)', 'latest_orders.ordered_at'),
            '%Y-%m-%d') }} as last_offline_purchase_date,
        cast(order_totals.offline_orders as integer) as offline_orders_365d,
        cast(
            case
                when order_totals.offline_revenue < 100 then floor(order_totals.offline_revenue / 10) * 10
                when order_totals.offline_revenue < 1000 then floor(order_totals.offline_revenue / 50) * 50
                else floor(order_totals.offline_revenue / 250) * 250
            end
            as decimal(18, 2)
        ) as offline_revenue_365d,
        latest_orders.currency as offline_revenue_currency,
        latest_store_visits.store_id as last_store_id,
        favourite_categories.category as favourite_category

    from latest_orders
    inner join order_totals
        on order_totals.customer_id = latest_orders.customer_id
    left join latest_store_visits
        on latest_store_visits.customer_id = latest_orders.customer_id
    left join favourite_categories
        on favourite_categories.customer_id = latest_orders.customer_id

),

{#- Braze's attribute object: every attribute, a NULL sent as null (Braze
    then removes the attribute, so the profile mirrors the mart). A date
    column ('time') goes as a full ISO 8601 timestamp, `YYYY-MM-DDT00:00:00Z`:
    the instant Braze gives a date without a time zone (midnight UTC), written
    out, so Braze stores a time attribute. braze_attributes.yml tests each
    time attribute of the payload (braze_attributes_time_attributes_are_timestamps). #}
{%- set attributes = [('external_id', offline_conversions.json_string('external_id'))] %}
{%- for column, encoder in [
    ('last_offline_purchase_date', 'time'),
    ('offline_orders_365d', 'json_number'),
    ('offline_revenue_365d', 'json_number'),
    ('offline_revenue_currency', 'json_string'),
    ('last_store_id', 'json_string'),
    ('favourite_category', 'json_string'),
] %}
    {%- if encoder == 'time' %}
        {%- set value = offline_conversions.json_string("(" ~ column ~ " || 'T00:00:00Z')") %}
    {%- else %}
        {%- set value = offline_conversions[encoder](column) %}
    {%- endif %}
    {%- do attributes.append((column, offline_conversions.json_or_null(value))) %}
{%- endfor %}
{%- if var('braze_update_existing_only') %}
    {%- do attributes.append(('_update_existing_only', "'true'")) %}
{%- endif %}

payloads as (

    select
        profiles.*,
        {{ offline_conversions.json_object(attributes) }} as payload

    from profiles

),

final as (

    select
        payloads.*,
        {{ offline_conversions.sha256_hex('payload') }} as payload_sha256

    from payloads

)

select * from final
