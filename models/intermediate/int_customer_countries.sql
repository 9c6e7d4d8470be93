-- Each customer's country and phone number, decided together: a phone
-- written with its calling code tells the country when none is written, and
-- the country tells how to read a phone written without one.
--
-- The country is the first of: the country written ('written'), the region
-- of a phone written internationally ('phone'), a postcode shape only one
-- country has ('postcode', seed postcode_shapes), the var default_country
-- ('default'). country_source says which decided.
--
-- Phones are read as libphonenumber's parse reads them, with its metadata
-- (seed phone_number_rules; macros/normalize/normalize_phone.sql):
--   1. '+' or '00' in front: international. The calling code is the 1 to 3
--      digit start that is one (calling codes are prefix-free); the rest is
--      the national number, read with that code's main region.
--   2. otherwise national, read with the customer's country. A number that
--      already starts with the country's calling code ("353 85 415 7718" for
--      an Irish customer) is taken as international when it is too long for
--      the country, or matches the country's pattern only without the code.
--   3. the national prefix (trunk 0, 1, 8...) is dropped when what is left
--      is still a number of the region.
--   4. the number is kept only when the national number has a possible
--      length and matches the general pattern of its calling code's main
--      region: "+34 964 968 8" (7 digits in Spain) is NULL.
-- phone_is_valid says whether libphonenumber would also call the number valid
-- (it matches one of the number types of its calling code's regions): the
-- destinations that refuse an invalid number (Klaviyo) send only those.

with

customers as (

    select
        customer_id,
        phone,
        postal_code,
        country
    from {{ ref('int_customers_latest') }}

),

countries as (

    select * from {{ ref('int_countries_resolved') }}

),

phone_rules as (

    select * from {{ ref('phone_number_rules') }}

),

main_phone_rules as (

    select * from phone_rules
    where region_rank = 0

),

shared_calling_codes as (

    select calling_code from phone_rules
    where region_rank > 0
    group by calling_code

),

postcode_shapes as (

    select * from {{ ref('postcode_shapes') }}

),

default_country as (

    select country_code from countries
    where country_key = lower('{{ var("default_country") }}')

),

written as (

    select
        customers.customer_id,
        customers.phone,
        customers.postal_code,
        countries.country_code as written_country_code,
        {{ offline_conversions.phone_as_written('customers.phone') }} as phone_written

    from customers
    left join countries
        on countries.country_key = {{ offline_conversions.country_lookup_key('customers.country') }}

),

with_digits as (

    select
        *,
        {{ offline_conversions.phone_digits_of('phone_written') }} as phone_digits_written
    from written

),

with_international_digits as (

    select
        *,
        {{ offline_conversions.phone_international_digits('phone_written', 'phone_digits_written') }} as international_digits
    from with_digits

),

international as (

    -- The calling code of a number written internationally; calling codes
    -- are prefix-free, so at most one of the three starts matches.
    select
        numbers.*,
        coalesce(code_1.calling_code, code_2.calling_code, code_3.calling_code) as international_calling_code

    from with_international_digits as numbers
    left join main_phone_rules as code_1
        on code_1.calling_code = substr(numbers.international_digits, 1, 1)
    left join main_phone_rules as code_2
        on code_2.calling_code = substr(numbers.international_digits, 1, 2)
    left join main_phone_rules as code_3
        on code_3.calling_code = substr(numbers.international_digits, 1, 3)

),

international_read as (

    select
        international.*,
        {{ offline_conversions.phone_without_national_prefix(
            "substr(international.international_digits, length(international.international_calling_code) + 1)",
            'code_rules') }} as international_national_number

    from international
    left join main_phone_rules as code_rules
        on code_rules.calling_code = international.international_calling_code

),

phone_regions as (

    -- The region of a phone written internationally, for a customer with no
    -- country written: the calling code's only region, or for a shared code
    -- the first region, in libphonenumber's order, that claims the number.
    select
        claims.customer_id,
        claimed.region as phone_region

    from (
        select
            numbers.customer_id,
            numbers.international_calling_code,
            min(case
                when shared.calling_code is null then candidates.region_rank
                when {{ offline_conversions.phone_region_claims('candidates.region', 'numbers.international_national_number') }}
                    then candidates.region_rank
            end) as region_rank
        from international_read as numbers
        inner join phone_rules as candidates
            on candidates.calling_code = numbers.international_calling_code
        left join shared_calling_codes as shared
            on shared.calling_code = numbers.international_calling_code
        where numbers.written_country_code is null
        group by numbers.customer_id, numbers.international_calling_code
    ) as claims
    inner join phone_rules as claimed
        on claimed.calling_code = claims.international_calling_code
            and claimed.region_rank = claims.region_rank

),

postcode_countries as (

    -- The country of a postcode shape only one country has, for a customer
    -- with neither a country written nor an international phone.
    select
        customer_id,
        country_code as postcode_country_code
    from (
        select
            numbers.customer_id,
            postcode_shapes.country_code,
            row_number() over (partition by numbers.customer_id order by postcode_shapes.shape_rank) as shape_order
        from international_read as numbers
        inner join postcode_shapes
            on {{ offline_conversions.regexp_full_match_column(
                offline_conversions.regexp_replace_all(
                    'upper(' ~ offline_conversions.trim_whitespace('numbers.postal_code') ~ ')',
                    offline_conversions.whitespace_class() ~ '+', ' '),
                'postcode_shapes.shape') }}
        where numbers.written_country_code is null
            and numbers.international_calling_code is null
    ) as matched
    where shape_order = 1

),

resolved as (

    select
        numbers.*,
        coalesce(
            numbers.written_country_code, phone_countries.country_code,
            postcode_countries.postcode_country_code, default_country.country_code
        ) as country_code,
        case
            when numbers.written_country_code is not null then 'written'
            when phone_countries.country_code is not null then 'phone'
            when postcode_countries.postcode_country_code is not null then 'postcode'
            else 'default'
        end as country_source

    from international_read as numbers
    cross join default_country
    left join phone_regions
        on phone_regions.customer_id = numbers.customer_id
    left join countries as phone_countries
        on phone_countries.country_key = lower(phone_regions.phone_region)
    left join postcode_countries
        on postcode_countries.customer_id = numbers.customer_id

),

national_read as (

    -- A number written nationally, read with the customer's country.
    select
        resolved.*,
        country_rules.calling_code as country_calling_code,
        case
            when resolved.international_digits is null
                and resolved.phone_digits_written like country_rules.calling_code || '%'
                then {{ offline_conversions.phone_without_national_prefix(
                    "substr(resolved.phone_digits_written, length(country_rules.calling_code) + 1)",
                    'country_rules', check_length=false) }}
        end as national_after_calling_code

    from resolved
    left join phone_rules as country_rules
        on country_rules.region = upper(resolved.country_code)

),

national_numbers as (

    select
        national_read.*,
        case
            when national_read.international_digits is not null
                then national_read.international_calling_code
            else national_read.country_calling_code
        end as calling_code,
        case
            when national_read.international_digits is not null
                then national_read.international_national_number
            when national_read.national_after_calling_code is not null
                and (
                    (
                        not {{ offline_conversions.phone_matches_region(
                            'country_rules.region', 'national_read.phone_digits_written') }}
                        and {{ offline_conversions.phone_matches_region(
                            'country_rules.region', 'national_read.national_after_calling_code') }}
                    )
                    or length(national_read.phone_digits_written) > country_rules.max_length
                )
                then national_read.national_after_calling_code
            else {{ offline_conversions.phone_without_national_prefix('national_read.phone_digits_written', 'country_rules') }}
        end as national_number

    from national_read
    left join phone_rules as country_rules
        on country_rules.region = upper(national_read.country_code)

),

kept_numbers as (

    select
        national_numbers.*,
        (
            {{ offline_conversions.phone_has_possible_length('national_numbers.national_number', 'number_rules.possible_lengths') }}
            and {{ offline_conversions.phone_matches_region('number_rules.region', 'national_numbers.national_number') }}
        ) as is_kept

    from national_numbers
    left join main_phone_rules as number_rules
        on number_rules.calling_code = national_numbers.calling_code

),

final as (

    select
        customer_id,
        country_code,
        country_source,
        {{ offline_conversions.keep_if_hashed('phone',
            "case when is_kept then '+' || calling_code || national_number end") }} as phone_e164,
        case
            when is_kept then {{ offline_conversions.phone_is_valid_number('calling_code', 'national_number') }}
            else false
        end as phone_is_valid

    from kept_numbers

)

select * from final
