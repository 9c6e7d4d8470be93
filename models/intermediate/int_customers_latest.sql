-- One row per customer: its latest version. A customer exported twice keeps
-- the row updated last; the older ones are set aside in int_rows_set_aside.

with

customers as (

    select * from {{ ref('stg_raw__customers') }}

),

ranked as (

    select
        *,
        row_number() over (
            partition by customer_id
            order by updated_at desc nulls last, email asc, phone asc
        ) as version_rank
    from customers
    where customer_id is not null

),

final as (

    select
        customer_id,
        email,
        phone,
        first_name,
        last_name,
        birth_date,
        gender,
        street,
        city,
        state,
        postal_code,
        country,
        has_marketing_consent,
        updated_at

    from ranked
    where version_rank = 1

)

select * from final
