{#
    The raw inputs. With var raw_path set (the default: the bundled demo),
    DuckDB and Spark read <raw_path>/<table>.parquet, .csv or .csv.gz
    directly, every column as text, and a column missing from the file reads
    as NULL. With raw_path set to none, or on any other warehouse, the table
    is the dbt source raw.<table>.
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

{#
    Spark: the file is registered as an external table (a CSV or Parquet
    data source table over the file, nothing copied) in the schema
    <target schema>_raw_files, since the staging views may not read a
    temporary view. As on DuckDB: <table>.parquet first, else <table>.csv,
    else <table>.csv.gz; CSV with a header row, RFC 4180 quoting ("" inside
    quotes), quoted line breaks; every column read as text; a column the file
    lacks is NULL, and column names match without regard to case. A
    relative raw_path is relative to the directory Spark was started in.
#}
{% macro spark__raw_table(table_name, columns) -%}
    {%- set raw_path = var('raw_path', none) -%}
    {%- if raw_path is none or raw_path == '' -%}
        {{ return(default__raw_table(table_name, columns)) }}
    {%- endif -%}
    {%- set raw_path = (raw_path | string).rstrip('/') -%}
    {%- set file_table = api.Relation.create(schema=target.schema ~ '_raw_files', identifier=table_name) -%}
    {%- set found_columns = {} -%}
    {%- if execute -%}
        {%- set listing = 'raw_files_listing__' ~ table_name -%}
        {%- do run_query(
            "create or replace temporary view " ~ listing ~ " using binaryFile options (path '"
            ~ raw_path ~ "', pathGlobFilter '" ~ table_name ~ ".*', recursiveFileLookup 'false')") -%}
        {%- set files = run_query("select path from " ~ listing ~ " order by path").columns[0].values() | list -%}
        {%- set parquet = [] -%}
        {%- set csv = [] -%}
        {%- for file in files -%}
            {%- if file.endswith('/' ~ table_name ~ '.parquet') -%}{%- do parquet.append(file) -%}
            {%- elif file.endswith('/' ~ table_name ~ '.csv') or file.endswith('/' ~ table_name ~ '.csv.gz') -%}{%- do csv.append(file) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if parquet | length > 0 -%}
            {%- set reader = "using parquet options (path '" ~ parquet[0] ~ "')" -%}
        {%- elif csv | length > 0 -%}
            {%- set reader = "using csv options (path '" ~ csv[0] ~ "', header 'true', multiLine 'true',"
                ~ " quote '\"', escape '\"', mode 'PERMISSIVE', encoding 'UTF-8')" -%}
        {%- else -%}
            {{ exceptions.raise_compiler_error(
                "No raw table '" ~ table_name ~ "' in raw_path '" ~ raw_path ~ "': add "
                ~ table_name ~ ".csv, " ~ table_name ~ ".csv.gz or " ~ table_name ~ ".parquet there, or set the dbt var raw_path.") }}
        {%- endif -%}
        {%- do run_query("create schema if not exists " ~ file_table.without_identifier()) -%}
        {%- do run_query("drop table if exists " ~ file_table) -%}
        {%- do run_query("create table " ~ file_table ~ " " ~ reader) -%}
        {%- for name in run_query("select * from " ~ file_table ~ " limit 0").column_names -%}
            {%- do found_columns.update({name | lower: name}) -%}
        {%- endfor -%}
    {%- endif -%}
    (
        select
            {%- for column in columns %}
            {%- if not execute or column | lower in found_columns %}
            cast(`{{ found_columns.get(column | lower, column) }}` as string) as {{ column }}{{ "," if not loop.last }}
            {%- else %}
            cast(null as string) as {{ column }}{{ "," if not loop.last }}
            {%- endif %}
            {%- endfor %}
        from {{ file_table }}
    )
{%- endmacro %}
