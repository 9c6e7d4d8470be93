{#
    Regular expressions, portable. Patterns are passed as plain Jinja strings
    and rendered as SQL literals by the adapter: DuckDB (RE2) and Spark (Java)
    read the same pattern syntax, but Spark's string literals treat a
    backslash as an escape, and DuckDB's regexp_replace replaces only the
    first match unless told 'g'.
#}

{% macro regex_literal(pattern) -%}
    {{ return(adapter.dispatch('regex_literal', 'offline_conversions')(pattern)) }}
{%- endmacro %}

{% macro default__regex_literal(pattern) -%}
    '{{ pattern | replace("'", "''") }}'
{%- endmacro %}

{#
    Spark: a backslash in a string literal is an escape, so it is doubled, and
    a quote is written \'. The pattern is a Java regex, which reads this
    syntax as RE2 does, but for two things: `.` stops at \r, NEL and the
    line and paragraph separators unless UNIX_LINES, (?d), is on (RE2's `.`
    stops at \n only), and `$` also matches before a final \n (full matches
    end with \z instead).
#}
{% macro spark__regex_literal(pattern) -%}
    '{{ ('(?d)' ~ pattern) | replace("\\", "\\\\") | replace("'", "\\'") }}'
{%- endmacro %}


{% macro regexp_replace_all(expression, pattern, replacement) -%}
    {{ return(adapter.dispatch('regexp_replace_all', 'offline_conversions')(expression, pattern, replacement)) }}
{%- endmacro %}

{% macro default__regexp_replace_all(expression, pattern, replacement) -%}
    regexp_replace({{ expression }}, {{ offline_conversions.regex_literal(pattern) }}, '{{ replacement }}')
{%- endmacro %}

{% macro duckdb__regexp_replace_all(expression, pattern, replacement) -%}
    regexp_replace({{ expression }}, {{ offline_conversions.regex_literal(pattern) }}, '{{ replacement }}', 'g')
{%- endmacro %}

{# Spark's regexp_replace replaces every match (its 4th argument is a start position); $ and \ are special in a Java replacement. #}
{% macro spark__regexp_replace_all(expression, pattern, replacement) -%}
    {%- set java_replacement = replacement | replace("\\", "\\\\") | replace("$", "\\$") -%}
    regexp_replace({{ expression }}, {{ offline_conversions.regex_literal(pattern) }}, '{{ java_replacement | replace("\\", "\\\\") | replace("'", "\\'") }}')
{%- endmacro %}


{# True when the whole value matches the pattern. #}
{% macro regexp_full_match(expression, pattern) -%}
    {{ return(adapter.dispatch('regexp_full_match', 'offline_conversions')(expression, pattern)) }}
{%- endmacro %}

{% macro default__regexp_full_match(expression, pattern) -%}
    regexp_like({{ expression }}, {{ offline_conversions.regex_literal('^(?:' ~ pattern ~ ')$') }})
{%- endmacro %}

{% macro duckdb__regexp_full_match(expression, pattern) -%}
    regexp_full_match({{ expression }}, {{ offline_conversions.regex_literal(pattern) }})
{%- endmacro %}

{% macro spark__regexp_full_match(expression, pattern) -%}
    ({{ expression }} rlike {{ offline_conversions.regex_literal('^(?:' ~ pattern ~ ')\\z') }})
{%- endmacro %}



{#
    True when the whole value matches a pattern held in a column (a seed's).
    The pattern is compiled again for every row: keep it to small sets of
    rows, and prefer constant patterns (regexp_full_match) on large ones.
#}
{% macro regexp_full_match_column(expression, pattern_expression) -%}
    {{ return(adapter.dispatch('regexp_full_match_column', 'offline_conversions')(expression, pattern_expression)) }}
{%- endmacro %}

{% macro default__regexp_full_match_column(expression, pattern_expression) -%}
    regexp_like({{ expression }}, '^(?:' || {{ pattern_expression }} || ')$')
{%- endmacro %}

{% macro duckdb__regexp_full_match_column(expression, pattern_expression) -%}
    regexp_full_match({{ expression }}, {{ pattern_expression }})
{%- endmacro %}

{% macro spark__regexp_full_match_column(expression, pattern_expression) -%}
    ({{ expression }} rlike concat('(?d)^(?:', {{ pattern_expression }}, ')$'))
{%- endmacro %}

{# The text of one capture group of the first match, or NULL. #}
{% macro regexp_extract_group(expression, pattern, group) -%}
    {{ return(adapter.dispatch('regexp_extract_group', 'offline_conversions')(expression, pattern, group)) }}
{%- endmacro %}

{% macro default__regexp_extract_group(expression, pattern, group) -%}
    nullif(regexp_extract({{ expression }}, {{ offline_conversions.regex_literal(pattern) }}, {{ group }}), '')
{%- endmacro %}
