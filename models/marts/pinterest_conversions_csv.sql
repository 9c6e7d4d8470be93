-- Pinterest's offline conversions CSV (Ads Manager's conversion upload, or a
-- partner SFTP drop), as a table: after delivery_key (the ledger key, not
-- written) come the file's columns in file order, each named as the file's
-- header, and the shipper writes them as they are. The rows are those of
-- pinterest_conversions (the Conversions API mart, one checkout per order);
-- ship one path or the other, never both.
--
-- Header names: email, event_time, event_type and source_type are confirmed
-- by Pinterest's help page "Upload conversions with Ads Manager" (its CSV
-- file specifications: email or email_1..email_4, hashed or clear; madid;
-- event_time, unix seconds recommended, within 30 days; event_type, default
-- Checkout; source_type, the event source). source_type takes the API path's
-- action_source ('offline'): the column is Pinterest's, the value's spelling
-- in a file is not confirmed (the part of the page we could read stops at
-- "Add the event source"). value, currency, order_id and quantity are NOT
-- confirmed by any Pinterest page we could read: they are these aliases, the
-- one place to rename them.
--
-- An order id holding a NUL character cannot go in a CSV cell: that order is
-- left out (int_rows_set_aside lists it).

with

conversions as (

    select * from {{ ref('pinterest_conversions') }}

),

final as (

    select
        delivery_key,
        em as email,
        event_time,
        event_name as event_type,
        action_source as source_type,  -- header confirmed, value not
        -- The API wants value as a string; the file takes a number.
        cast(value as decimal(18, 2)) as value,  -- header not confirmed
        currency,  -- header not confirmed
        order_id,  -- header not confirmed
        num_items as quantity  -- header not confirmed

    from conversions
    where not {{ offline_conversions.has_nul_character('order_id') }}

)

select * from final
