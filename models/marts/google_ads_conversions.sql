-- Google (Data Manager API events:ingest, or the Ads API click-conversion
-- upload as a second mode): one conversion per eligible store or phone order
-- of the last google_ads_window_days. Google reads the conversion time as
-- the shop's wall clock with its offset, so the time is written back in the
-- offset the order was recorded with; the transaction id (order id) is
-- Google's dedup key.

with

eligible_orders as (

    select * from {{ ref('int_orders_eligible') }}

),

orders_in_window as (

    select * from eligible_orders
    where {{ offline_conversions.in_window_days('ordered_at', var('google_ads_window_days', 90)) }}
        and {{ offline_conversions.in_offline_channels('channel') }}
        -- Google matches on hashed email or phone only (no address on this upload).
        and (email_google_sha256 is not null or phone_e164_sha256 is not null)

),

final as (

    select
        event_id as delivery_key,
        order_id as transaction_id,
        {{ offline_conversions.format_timestamp_with_offset(
            'ordered_at', 'coalesce(utc_offset_minutes, 0)', '%Y-%m-%dT%H:%M:%S') }} as event_timestamp,
        {{ offline_conversions.format_timestamp_with_offset(
            'ordered_at', 'coalesce(utc_offset_minutes, 0)', '%Y-%m-%d %H:%M:%S') }} as conversion_date_time,
        net_value as conversion_value,
        currency,
        case channel
            when 'phone' then '{{ var("google_ads_phone_event_source", "PHONE") }}'
            else '{{ var("google_ads_event_source", "IN_STORE") }}'
        end as event_source,
        email_google_sha256 as email_sha256,
        phone_e164_sha256 as phone_sha256,
        -- Data Manager's ConsentStatus names; 'denied' cannot reach a mart
        -- (opted-out customers are not eligible) but is mapped for clarity.
        case consent_status
            when 'granted' then 'CONSENT_GRANTED'
            when 'denied' then 'CONSENT_DENIED'
            else 'CONSENT_STATUS_UNSPECIFIED'
        end as ad_user_data_consent,
        case consent_status
            when 'granted' then 'CONSENT_GRANTED'
            when 'denied' then 'CONSENT_DENIED'
            else 'CONSENT_STATUS_UNSPECIFIED'
        end as ad_personalization_consent

    from orders_in_window

)

select * from final
