{#
    Whitespace means all of Unicode's: ASCII spaces and controls, the
    separators of category Z (no-break space, thin and ideographic spaces,
    line and paragraph separators), NEL, and the zero-width space and BOM
    that copy-paste leaves behind. tests/sql/reference.py holds the same set.
#}

{% macro whitespace_class() -%}
    {{ return('[\\s\\x{0b}\\x{1c}-\\x{1f}\\x{85}\\p{Z}\\x{200b}\\x{feff}]') }}
{%- endmacro %}

{# Remove Unicode whitespace at both ends; empty becomes NULL. #}
{% macro trim_whitespace(expression) -%}
    {%- set ws = offline_conversions.whitespace_class() -%}
    nullif({{ offline_conversions.regexp_replace_all(expression, '^' ~ ws ~ '+|' ~ ws ~ '+$', '') }}, '')
{%- endmacro %}

{# Remove every Unicode whitespace character; empty becomes NULL. #}
{% macro strip_whitespace(expression) -%}
    nullif({{ offline_conversions.regexp_replace_all(expression, offline_conversions.whitespace_class() ~ '+', '') }}, '')
{%- endmacro %}

{#
    Lower case, character by character (Unicode's simple mapping). Spark
    lower-cases with Java, which writes İ as i + a combining dot and a
    capital sigma at the end of a word as ς; DuckDB writes i and σ. Spark
    is given those two already lower-cased, so both write the same.
#}
{% macro lower_text(expression) -%}
    {{ return(adapter.dispatch('lower_text', 'offline_conversions')(expression)) }}
{%- endmacro %}

{% macro default__lower_text(expression) -%}
    lower({{ expression }})
{%- endmacro %}

{% macro spark__lower_text(expression) -%}
    lower(translate({{ expression }}, '\u0130\u03a3', 'i\u03c3'))
{%- endmacro %}


{# Unicode NFC, so a letter and its combining accent hash like the precomposed letter. #}
{% macro unicode_nfc(expression) -%}
    {{ return(adapter.dispatch('unicode_nfc', 'offline_conversions')(expression)) }}
{%- endmacro %}

{% macro default__unicode_nfc(expression) -%}
    {{ expression }}
{%- endmacro %}

{% macro duckdb__unicode_nfc(expression) -%}
    nfc_normalize({{ expression }})
{%- endmacro %}

{#
    Spark has no Unicode normalisation function (and calling Java's through
    reflect is non-deterministic to Spark, which then refuses it in a join
    condition). So NFC is done here: the text is split into characters, each
    character NFC replaces is replaced (ohm sign -> omega), and each
    combining mark that NFC composes with the character before it is composed
    into it (e + U+0301 -> é, then ẹ + U+0302 -> ệ), from the table in
    macros/spark/unicode_nfc_table.sql. That is NFC for text whose marks
    come in canonical order, the way keyboards and NFD write them; Hangul
    jamo are left as they are.
#}
{% macro spark__unicode_nfc(expression) -%}
    transform(array({{ offline_conversions.spark_unicode_nfc_map() }}), nfc__map -> aggregate(
        transform(regexp_extract_all({{ expression }}, '(?s).', 0),
            nfc__character -> coalesce(try_element_at(nfc__map, nfc__character), nfc__character)),
        '',
        (nfc__text, nfc__character) -> coalesce(
            concat(substr(nfc__text, 1, length(nfc__text) - 1),
                try_element_at(nfc__map, concat(right(nfc__text, 1), nfc__character))),
            concat(nfc__text, nfc__character))))[0]
{%- endmacro %}


{# A safe cast: NULL where the value does not convert. #}
{% macro safe_cast(expression, data_type) -%}
    {{ return(adapter.dispatch('safe_cast', 'offline_conversions')(expression, data_type)) }}
{%- endmacro %}

{% macro default__safe_cast(expression, data_type) -%}
    try_cast({{ expression }} as {{ data_type }})
{%- endmacro %}

{#
    Spark's try_cast to an integer refuses '12.5' and '1e2', which DuckDB
    reads (rounding half away from zero): read a decimal and round it, so
    both give 13 and 100. (DuckDB also reads '0x10' and '1_000'; Spark
    does not.)
#}
{% macro spark__safe_cast(expression, data_type) -%}
    {%- if (data_type | lower) in ('integer', 'int', 'bigint', 'smallint') -%}
    try_cast(round(try_cast({{ expression }} as decimal(38, 18))) as {{ data_type }})
    {%- else -%}
    try_cast({{ expression }} as {{ offline_conversions.spark_type_name(data_type) }})
    {%- endif -%}
{%- endmacro %}


{# The name of the text type in a cast: varchar, or string on Spark (whose varchar needs a length). #}
{% macro text_type() -%}
    {{ return(adapter.dispatch('text_type', 'offline_conversions')()) }}
{%- endmacro %}

{% macro default__text_type() -%}
    {{ return('varchar') }}
{%- endmacro %}

{% macro spark__text_type() -%}
    {{ return('string') }}
{%- endmacro %}
