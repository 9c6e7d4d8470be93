-- Every way a country may be written (alpha-2, alpha-3, English name, common
-- alias), keyed the way country_lookup_key writes a raw value, with its
-- alpha-2 code, calling code and trunk prefix.

with

country_codes as (

    select * from {{ ref('country_codes') }}

),

country_aliases as (

    select * from {{ ref('country_aliases') }}

),

spellings as (

    select
        alpha2 as spelling,
        alpha2
    from country_codes
    union all
    select
        alpha3 as spelling,
        alpha2
    from country_codes
    union all
    select
        country_name as spelling,
        alpha2
    from country_codes
    union all
    select
        alias as spelling,
        alpha2
    from country_aliases

),

keyed as (

    select
        {{ offline_conversions.country_lookup_key('spelling') }} as country_key,
        min(upper(alpha2)) as alpha2

    from spellings
    group by 1

),

final as (

    select
        keyed.country_key,
        lower(keyed.alpha2) as country_code,
        country_codes.alpha3 as country_alpha3,
        country_codes.calling_code,
        country_codes.trunk_prefix

    from keyed
    inner join country_codes
        on upper(country_codes.alpha2) = keyed.alpha2
    where keyed.country_key is not null

)

select * from final
