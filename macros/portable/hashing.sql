{# SHA-256 of the UTF-8 bytes as 64 lower-case hex characters. #}
{% macro sha256_hex(expression) -%}
    {{ return(adapter.dispatch('sha256_hex', 'offline_conversions')(expression)) }}
{%- endmacro %}

{% macro default__sha256_hex(expression) -%}
    lower(sha2({{ expression }}, 256))
{%- endmacro %}

{% macro duckdb__sha256_hex(expression) -%}
    sha256({{ expression }})
{%- endmacro %}

{# Spark's sha2 hashes the UTF-8 bytes and writes lower-case hex already. #}
{% macro spark__sha256_hex(expression) -%}
    sha2({{ expression }}, 256)
{%- endmacro %}


{#
    MD5 of the UTF-8 bytes as 32 lower-case hex characters. Only Criteo's
    offline sales file asks for it, as SHA-256 of this text (criteo_sales).
#}
{% macro md5_hex(expression) -%}
    {{ return(adapter.dispatch('md5_hex', 'offline_conversions')(expression)) }}
{%- endmacro %}

{% macro default__md5_hex(expression) -%}
    lower(md5({{ expression }}))
{%- endmacro %}

{% macro duckdb__md5_hex(expression) -%}
    md5({{ expression }})
{%- endmacro %}

{# Spark's md5 hashes the UTF-8 bytes of a string and writes lower-case hex. #}
{% macro spark__md5_hex(expression) -%}
    md5({{ expression }})
{%- endmacro %}


{# Base64 of a hex string's bytes (UID2 wants base64 of the SHA-256 digest). #}
{% macro hex_to_base64(expression) -%}
    {{ return(adapter.dispatch('hex_to_base64', 'offline_conversions')(expression)) }}
{%- endmacro %}

{% macro default__hex_to_base64(expression) -%}
    base64(unhex({{ expression }}))
{%- endmacro %}

{% macro duckdb__hex_to_base64(expression) -%}
    to_base64(unhex({{ expression }}))
{%- endmacro %}

{% macro spark__hex_to_base64(expression) -%}
    base64(unhex({{ expression }}))
{%- endmacro %}


{#
    Hash a normalised identifier once. A value that already is 64 hex
    characters was hashed upstream and passes through; NULL stays NULL, so
    nothing is ever the hash of an empty string.
#}
{% macro hash_identifier(expression) -%}
    case
        when {{ expression }} is null then null
        when {{ offline_conversions.regexp_full_match(expression, '[0-9a-f]{64}') }} then {{ expression }}
        else {{ offline_conversions.sha256_hex(expression) }}
    end
{%- endmacro %}


{# The same, written as base64 of the digest (UID2's form). #}
{% macro hash_identifier_base64(expression) -%}
    {{ offline_conversions.hex_to_base64(offline_conversions.hash_identifier(expression)) }}
{%- endmacro %}
