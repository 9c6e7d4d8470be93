-- Snapchat's offline events CSV, as a table: after delivery_key (the ledger
-- key, not written) come the file's columns in file order, each named as the
-- file's header, and the shipper writes them as they are. The rows are those
-- of snapchat_conversions (whose payload the Conversions API destination
-- `snapchat` sends); ship one path or the other, never both.
--
-- Header names: NONE is confirmed by a Snapchat page we could read (casing
-- included). They are these aliases, the one place to rename them.
--
-- An order whose id or product ids hold a NUL character cannot go in a CSV
-- cell: it is left out (int_rows_set_aside lists it).

with

conversions as (

    select * from {{ ref('snapchat_conversions') }}

),

final as (

    select
        delivery_key,
        hashed_email,  -- header not confirmed
        hashed_phone as hashed_phone_number,  -- header not confirmed
        event_type,  -- header not confirmed
        timestamp_utc as {{ adapter.quote('timestamp') }},  -- header not confirmed
        price,  -- header not confirmed
        currency,  -- header not confirmed
        transaction_id,  -- header not confirmed
        item_ids,  -- header not confirmed
        number_items  -- header not confirmed

    from conversions
    where not {{ offline_conversions.has_nul_character('transaction_id') }}
        and not {{ offline_conversions.has_nul_character('item_ids') }}

)

select * from final
