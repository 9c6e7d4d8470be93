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
    where {{ offline_conversions.in_window_days('ordered_at', var('google_ads_window_days')) }}
        and {{ offline_conversions.in_offline_channels('channel') }}
        -- Google matches on hashed email or phone only (no address on this upload).
        and (email_google_sha256 is not null or phone_e164_sha256 is not null)

),

conversions as (

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
            when 'phone' then '{{ var("google_ads_phone_event_source") }}'
            else '{{ var("google_ads_event_source") }}'
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
        end as ad_personalization_consent,
        -- What the window and the shipper's age limit judge: the UTC time.
        event_time

    from orders_in_window

),

final as (

    -- Data Manager's Event: userIdentifiers lists the email then the phone
    -- hash, each only when present; consent is left out when empty.
    select
        conversions.*,
        {{ offline_conversions.json_object([
            ('transactionId', offline_conversions.json_string('transaction_id')),
            ('eventTimestamp', offline_conversions.json_string('event_timestamp')),
            ('eventSource', offline_conversions.json_string('event_source')),
            ('conversionValue', offline_conversions.json_number('conversion_value')),
            ('currency', offline_conversions.json_string('currency')),
            ('userData', offline_conversions.json_object([
                ('userIdentifiers', offline_conversions.json_array([
                    offline_conversions.json_object(
                        [('emailAddress', offline_conversions.json_string('email_sha256'))], empty_as_null=true),
                    offline_conversions.json_object(
                        [('phoneNumber', offline_conversions.json_string('phone_sha256'))], empty_as_null=true),
                ])),
            ])),
            ('consent', offline_conversions.json_object([
                ('adUserData', offline_conversions.json_string('ad_user_data_consent')),
                ('adPersonalization', offline_conversions.json_string('ad_personalization_consent')),
            ], empty_as_null=true)),
        ]) }} as payload

    from conversions

)

select * from final
