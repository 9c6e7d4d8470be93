{#
    Aggregate rows into a JSON array of objects, as text. `fields` is a list
    of (key, expression) pairs, kept in order; `order_by` orders the array so
    a rebuild on the same data gives the same text.
#}
{% macro json_array_agg(fields, order_by) -%}
    {{ return(adapter.dispatch('json_array_agg', 'offline_conversions')(fields, order_by)) }}
{%- endmacro %}

{% macro default__json_array_agg(fields, order_by) -%}
    {{ exceptions.raise_compiler_error(
        "json_array_agg has no implementation for adapter '" ~ adapter.type()
        ~ "': add a " ~ adapter.type() ~ "__json_array_agg macro in macros/portable/json.sql") }}
{%- endmacro %}

{% macro duckdb__json_array_agg(fields, order_by) -%}
    cast(to_json(list(struct_pack(
        {%- for key, expression in fields %}
        "{{ key }}" := {{ expression }}{{ "," if not loop.last }}
        {%- endfor %}
    ) order by {{ order_by }})) as varchar)
{%- endmacro %}

{#
    Spark: collect_list has no ORDER BY, so (sort key, object) pairs are
    sorted and the objects kept. to_json leaves out NULL fields unless told
    not to; DuckDB writes them as null, and so does this. Both write the
    same compact text: no spaces, keys in the order given, decimals with
    their scale (50.00), strings as UTF-8 with " and \ escaped.
#}
{% macro spark__json_array_agg(fields, order_by) -%}
    to_json(transform(
        array_sort(collect_list(struct(struct({{ order_by }}) as sort_key, named_struct(
            {%- for key, expression in fields %}
            '{{ key }}', {{ expression }}{{ "," if not loop.last }}
            {%- endfor %}
        ) as item))),
        entry -> entry.item
    ), map('ignoreNullFields', 'false'))
{%- endmacro %}


{# A JSON array of strings, ordered. #}
{% macro json_string_array_agg(expression, order_by) -%}
    {{ return(adapter.dispatch('json_string_array_agg', 'offline_conversions')(expression, order_by)) }}
{%- endmacro %}

{% macro default__json_string_array_agg(expression, order_by) -%}
    {{ exceptions.raise_compiler_error(
        "json_string_array_agg has no implementation for adapter '" ~ adapter.type() ~ "'") }}
{%- endmacro %}

{% macro duckdb__json_string_array_agg(expression, order_by) -%}
    cast(to_json(list(cast({{ expression }} as varchar) order by {{ order_by }})) as varchar)
{%- endmacro %}

{% macro spark__json_string_array_agg(expression, order_by) -%}
    to_json(transform(
        array_sort(collect_list(struct(struct({{ order_by }}) as sort_key, cast({{ expression }} as string) as item))),
        entry -> entry.item
    ))
{%- endmacro %}


{#
    Building one JSON value per row, as text (the marts' `payload`).

    Every macro below takes and gives SQL expressions holding JSON text, with
    NULL meaning "no value": json_object leaves such a member out, as the
    shipper's drop_none did, and json_array leaves such an element out. So a
    payload is written as nested calls:

        json_object([
            ('event_name', json_string('event_name')),
            ('event_time', json_number('event_time')),
            ('user_data', json_object([('em', json_string_list('em'))])),
        ])

    Keys are written into the SQL as they are: letters, digits and '_' only.
#}

{#
    A JSON object from `members`, a list of (key, json_text_expression) pairs
    kept in order. A member whose expression is NULL is left out. With
    `empty_as_null`, an object left with no member is NULL instead of '{}'
    (so an enclosing json_object leaves it out too).
#}
{% macro json_object(members, empty_as_null=false) -%}
    {{ return(adapter.dispatch('json_object', 'offline_conversions')(members, empty_as_null)) }}
{%- endmacro %}

{#
    Generic SQL: each member as ',"key":value', or '' when its value is NULL
    (`||` with a NULL is NULL), joined; the leading comma cut off. Nothing
    here relies on concat_ws skipping NULLs, which not every warehouse does.
#}
{% macro default__json_object(members, empty_as_null) -%}
    {%- set pieces = [] -%}
    {%- for key, expression in members -%}
        {%- do pieces.append("coalesce(',' || '" ~ offline_conversions.json_key(key) ~ ":' || (" ~ expression ~ "), '')") -%}
    {%- endfor -%}
    {%- if pieces | length == 0 -%}
        {{ "cast(null as " ~ dbt.type_string() ~ ")" if empty_as_null else "'{}'" }}
    {%- else -%}
        {%- set joined = "(" ~ pieces | join(" || ") ~ ")" -%}
        {%- if empty_as_null -%}
    '{' || substr(nullif({{ joined }}, ''), 2) || '}'
        {%- else -%}
    '{' || substr({{ joined }}, 2) || '}'
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}


{# A JSON array of `elements` (JSON text expressions, in order); NULL elements are left out. #}
{% macro json_array(elements, empty_as_null=false) -%}
    {{ return(adapter.dispatch('json_array', 'offline_conversions')(elements, empty_as_null)) }}
{%- endmacro %}

{% macro default__json_array(elements, empty_as_null) -%}
    {%- set pieces = [] -%}
    {%- for expression in elements -%}
        {%- do pieces.append("coalesce(',' || (" ~ expression ~ "), '')") -%}
    {%- endfor -%}
    {%- if pieces | length == 0 -%}
        {{ "cast(null as " ~ dbt.type_string() ~ ")" if empty_as_null else "'[]'" }}
    {%- else -%}
        {%- set joined = "(" ~ pieces | join(" || ") ~ ")" -%}
        {%- if empty_as_null -%}
    '[' || substr(nullif({{ joined }}, ''), 2) || ']'
        {%- else -%}
    '[' || substr({{ joined }}, 2) || ']'
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}


{# The key as JSON text ("key"); refuses what would need escaping. #}
{% macro json_key(key) -%}
    {%- if not modules.re.fullmatch('[A-Za-z0-9_]+', key) -%}
        {{ exceptions.raise_compiler_error("json key " ~ key ~ " must be letters, digits and '_' only") }}
    {%- endif -%}
    "{{ key }}"
{%- endmacro %}


{#
    A text value as a JSON string: quoted, with '"', '\' and control
    characters escaped, anything else (non-ASCII letters, emoji) written as
    UTF-8. NULL stays NULL.
#}
{% macro json_string(expression) -%}
    {{ return(adapter.dispatch('json_string', 'offline_conversions')(expression)) }}
{%- endmacro %}

{% macro default__json_string(expression) -%}
    {{ exceptions.raise_compiler_error(
        "json_string has no implementation for adapter '" ~ adapter.type()
        ~ "': add a " ~ adapter.type() ~ "__json_string macro in macros/portable/json.sql") }}
{%- endmacro %}

{% macro duckdb__json_string(expression) -%}
    cast(to_json(cast({{ expression }} as varchar)) as varchar)
{%- endmacro %}

{#
    Spark has no JSON encoder for a bare string: encode a one-element array
    and strip its brackets. to_json(array(NULL)) is '[null]', hence the case.
#}
{% macro spark__json_string(expression) -%}
    case when {{ expression }} is not null then
        substr(to_json(array(cast({{ expression }} as string))), 2,
               length(to_json(array(cast({{ expression }} as string)))) - 2)
    end
{%- endmacro %}


{#
    An integer or decimal as a JSON number: its SQL text (a decimal(18, 2)
    keeps its scale, 10.50, which reads as the same number). Not for
    floating-point columns, whose text differs by warehouse.
#}
{% macro json_number(expression) -%}
    {{ return(adapter.dispatch('json_number', 'offline_conversions')(expression)) }}
{%- endmacro %}

{% macro default__json_number(expression) -%}
    cast({{ expression }} as {{ dbt.type_string() }})
{%- endmacro %}


{# A boolean as JSON true / false. #}
{% macro json_boolean(expression) -%}
    {{ return(adapter.dispatch('json_boolean', 'offline_conversions')(expression)) }}
{%- endmacro %}

{% macro default__json_boolean(expression) -%}
    case when {{ expression }} then 'true' when not {{ expression }} then 'false' end
{%- endmacro %}


{#
    Meta's and Pinterest's user_data: a JSON object with each of `columns`
    (hash columns) as a one-element list under its own name, NULL ones left
    out; '{}' when every one is NULL.
#}
{% macro json_hash_lists(columns) -%}
    {%- set members = [] -%}
    {%- for column in columns -%}
        {%- do members.append((column, offline_conversions.json_string_list(column))) -%}
    {%- endfor -%}
    {{ offline_conversions.json_object(members) }}
{%- endmacro %}


{# A text value as a one-element list of JSON strings (Meta's and Pinterest's user_data). #}
{% macro json_string_list(expression) -%}
    {{ return(adapter.dispatch('json_string_list', 'offline_conversions')(expression)) }}
{%- endmacro %}

{% macro default__json_string_list(expression) -%}
    '[' || {{ offline_conversions.json_string(expression) }} || ']'
{%- endmacro %}


{#
    JSON text for a member whose NULL must be sent as null rather than left
    out (Braze reads a null attribute as "remove it").
#}
{% macro json_or_null(json_expression) -%}
    coalesce({{ json_expression }}, 'null')
{%- endmacro %}


{#
    Aggregate JSON texts (one per row, e.g. json_object) into a JSON array,
    ordered by `order_by`; NULL texts are left out, no row gives NULL.
#}
{% macro json_array_agg_text(json_expression, order_by) -%}
    {{ return(adapter.dispatch('json_array_agg_text', 'offline_conversions')(json_expression, order_by)) }}
{%- endmacro %}

{% macro default__json_array_agg_text(json_expression, order_by) -%}
    '[' || {{ offline_conversions.ordered_string_agg(json_expression, ',', order_by) }} || ']'
{%- endmacro %}


{#
    True when the text is one JSON object (the data test is_json_object and
    the marts' payload checks use it).
#}
{% macro is_json_object(expression) -%}
    {{ return(adapter.dispatch('is_json_object', 'offline_conversions')(expression)) }}
{%- endmacro %}

{% macro default__is_json_object(expression) -%}
    {{ exceptions.raise_compiler_error(
        "is_json_object has no implementation for adapter '" ~ adapter.type() ~ "'") }}
{%- endmacro %}

{% macro duckdb__is_json_object(expression) -%}
    coalesce(json_valid({{ expression }}) and json_type({{ expression }}) = 'OBJECT', false)
{%- endmacro %}

{#
    Spark: get_json_object(x, '$') is NULL for text that does not parse; the
    first character tells an object from the other JSON values.
#}
{% macro spark__is_json_object(expression) -%}
    coalesce(get_json_object({{ expression }}, '$') is not null
        and substr(ltrim({{ expression }}), 1, 1) = '{', false)
{%- endmacro %}


{# The value of a top-level member of a JSON object as text (NULL when absent or null). #}
{% macro json_member_text(expression, key) -%}
    {{ return(adapter.dispatch('json_member_text', 'offline_conversions')(expression, key)) }}
{%- endmacro %}

{% macro default__json_member_text(expression, key) -%}
    {{ exceptions.raise_compiler_error(
        "json_member_text has no implementation for adapter '" ~ adapter.type() ~ "'") }}
{%- endmacro %}

{% macro duckdb__json_member_text(expression, key) -%}
    json_extract_string({{ expression }}, '$.{{ key }}')
{%- endmacro %}

{% macro spark__json_member_text(expression, key) -%}
    get_json_object({{ expression }}, '$.{{ key }}')
{%- endmacro %}


{# True when the text is one JSON array. #}
{% macro is_json_array(expression) -%}
    {{ return(adapter.dispatch('is_json_array', 'offline_conversions')(expression)) }}
{%- endmacro %}

{% macro default__is_json_array(expression) -%}
    {{ exceptions.raise_compiler_error(
        "is_json_array has no implementation for adapter '" ~ adapter.type() ~ "'") }}
{%- endmacro %}

{% macro duckdb__is_json_array(expression) -%}
    coalesce(json_valid({{ expression }}) and json_type({{ expression }}) = 'ARRAY', false)
{%- endmacro %}

{% macro spark__is_json_array(expression) -%}
    coalesce(get_json_object({{ expression }}, '$') is not null
        and substr(ltrim({{ expression }}), 1, 1) = '[', false)
{%- endmacro %}
