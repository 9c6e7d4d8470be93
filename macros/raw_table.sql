{#
    The raw inputs. With var raw_path set to a directory, DuckDB and Spark
    read <raw_path>/<table>.parquet, .csv or .csv.gz directly, every column
    as text, and a column missing from the file reads as NULL. With
    raw_path set to none, or on any other warehouse, the table is the dbt
    source raw.<table>, read the same way.

    `required` lists the columns the models cannot work without; an entry
    that is a list names alternatives (one of them is enough). A required
    column missing from the file or table fails the build at once with one
    sentence ("orders has no column order_id: ..."), instead of building
    empty marts with every row set aside. Column names match without regard
    to case.
#}
{% macro raw_table(table_name, columns, required=[]) -%}
    {{ return(adapter.dispatch('raw_table', 'offline_conversions')(table_name, columns, required)) }}
{%- endmacro %}

{#
    Fails the build when a required column is missing. `found` maps each
    column name the file or table has, lower-cased, to its spelling there;
    `fix` names what to fix ("the raw file data/demo/orders.csv", "the
    source table raw.orders").
#}
{% macro check_required_columns(table_name, found, required, fix) -%}
    {%- set missing = [] -%}
    {%- for entry in required -%}
        {%- set alternatives = [entry] if entry is string else entry -%}
        {%- set present = [] -%}
        {%- for column in alternatives if column | lower in found -%}
            {%- do present.append(column) -%}
        {%- endfor -%}
        {%- if present | length == 0 -%}
            {%- do missing.append(alternatives | join(' or ')) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if missing | length > 0 -%}
        {{ exceptions.raise_compiler_error(
            table_name ~ " has no column " ~ missing | join(', no column ')
            ~ ": fix " ~ fix ~ " (its columns: "
            ~ (found.values() | list | join(', ') or 'none') ~ ").") }}
    {%- endif -%}
{%- endmacro %}

{#
    The dbt source raw.<table>: a missing optional column reads as NULL, a
    missing required column or table fails with one sentence.
#}
{% macro default__raw_table(table_name, columns, required=[]) -%}
    {%- set source_relation = source('raw', table_name) -%}
    {%- set found = {} -%}
    {%- if execute -%}
        {%- set relation = adapter.get_relation(
            database=source_relation.database, schema=source_relation.schema,
            identifier=source_relation.identifier) -%}
        {%- if relation is none -%}
            {{ exceptions.raise_compiler_error(
                "No raw table '" ~ table_name ~ "': the source " ~ source_relation
                ~ " does not exist; create it, or set the dbt var raw_path to a directory holding "
                ~ table_name ~ ".csv, .csv.gz or .parquet.") }}
        {%- endif -%}
        {%- for column in adapter.get_columns_in_relation(relation) -%}
            {%- do found.update({column.name | lower: column.name}) -%}
        {%- endfor -%}
        {%- do offline_conversions.check_required_columns(
            table_name, found, required, "the source table " ~ source_relation) -%}
    {%- endif -%}
    (
        select
            {%- for column in columns %}
            {%- if not execute or column | lower in found %}
            cast({{ adapter.quote(found.get(column | lower, column)) }} as {{ dbt.type_string() }}) as {{ column }}{{ "," if not loop.last }}
            {%- else %}
            cast(null as {{ dbt.type_string() }}) as {{ column }}{{ "," if not loop.last }}
            {%- endif %}
            {%- endfor %}
        from {{ source_relation }}
    )
{%- endmacro %}

{% macro duckdb__raw_table(table_name, columns, required=[]) -%}
    {%- set raw_path = var('raw_path') -%}
    {%- set source_relation = source('raw', table_name) -%}
    {%- if raw_path is none or raw_path == '' -%}
        {{ return(default__raw_table(table_name, columns, required)) }}
    {%- endif -%}
    {%- set reader = "read_csv('" ~ raw_path ~ "/" ~ table_name ~ ".csv', header = true, all_varchar = true)" -%}
    {%- if execute -%}
        {%- set listing = run_query(
            "select file from glob('" ~ raw_path ~ "/" ~ table_name ~ ".*') order by file") -%}
        {%- set files = listing.columns[0].values() | list -%}
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
        {%- set found = {} -%}
        {%- for name in run_query("select * from " ~ reader ~ " as raw_file limit 0").column_names -%}
            {%- do found.update({name | lower: name}) -%}
        {%- endfor -%}
        {%- do offline_conversions.check_required_columns(
            table_name, found, required, "the raw file " ~ (parquet + csv)[0]) -%}
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
{% macro spark__raw_table(table_name, columns, required=[]) -%}
    {%- set raw_path = var('raw_path') -%}
    {%- if raw_path is none or raw_path == '' -%}
        {{ return(default__raw_table(table_name, columns, required)) }}
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
        {%- do offline_conversions.check_required_columns(
            table_name, found_columns, required, "the raw file " ~ (parquet + csv)[0]) -%}
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
