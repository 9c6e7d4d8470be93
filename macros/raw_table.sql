{#
    The raw inputs. With var raw_path set (the default: the bundled demo),
    DuckDB reads <raw_path>/<table>.parquet, .csv or .csv.gz directly, every
    column as text, and a column missing from the file reads as NULL. With
    raw_path set to none, or on any other warehouse, the table is the dbt
    source raw.<table>.
#}
{% macro raw_table(table_name, columns) -%}
    {{ return(adapter.dispatch('raw_table', 'offline_conversions')(table_name, columns)) }}
{%- endmacro %}

{% macro default__raw_table(table_name, columns) -%}
    (
        select
            {%- for column in columns %}
            cast({{ column }} as {{ dbt.type_string() }}) as {{ column }}{{ "," if not loop.last }}
            {%- endfor %}
        from {{ source('raw', table_name) }}
    )
{%- endmacro %}

{% macro duckdb__raw_table(table_name, columns) -%}
    {%- set raw_path = var('raw_path', none) -%}
    {%- set source_relation = source('raw', table_name) -%}
    {%- if raw_path is none or raw_path == '' -%}
        {{ return(default__raw_table(table_name, columns)) }}
    {%- endif -%}
    {%- set reader = "read_csv('" ~ raw_path ~ "/" ~ table_name ~ ".csv', header = true, all_varchar = true)" -%}
    {%- if execute -%}
        {%- set found = run_query(
            "select file from glob('" ~ raw_path ~ "/" ~ table_name ~ ".*') order by file") -%}
        {%- set files = found.columns[0].values() | list -%}
        {%- set parquet = [] -%}
        {%- set csv = [] -%}
        {%- for file in files -%}
            {%- if file.endswith('.parquet') -%}{%- do parquet.append(file) -%}
            {%- elif file.endswith('.csv') or file.endswith('.csv.gz') -%}{%- do csv.append(file) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if parquet | length > 0 -%}
            {%- set reader = "(select columns(*)::varchar from read_parquet('" ~ parquet[0] ~ "'))" -%}
        {%- elif csv | length > 0 -%}
            {%- set reader = "read_csv('" ~ csv[0] ~ "', header = true, all_varchar = true)" -%}
        {%- else -%}
            {{ exceptions.raise_compiler_error(
                "No raw table '" ~ table_name ~ "' in raw_path '" ~ raw_path ~ "': add "
                ~ table_name ~ ".csv, " ~ table_name ~ ".csv.gz or " ~ table_name ~ ".parquet there, or set the dbt var raw_path.") }}
        {%- endif -%}
    {%- endif -%}
    (
        select
            {%- for column in columns %}
            {{ column }}{{ "," if not loop.last }}
            {%- endfor %}
        from (
            select
                {%- for column in columns %}
                cast(null as varchar) as {{ column }}{{ "," if not loop.last }}
                {%- endfor %}
            where false
            union all by name
            select * from {{ reader }}
        ) as raw_file
    )
{%- endmacro %}
