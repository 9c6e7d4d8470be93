{#
    Spark (dbt-spark, and Databricks, which dispatches to spark__ after
    databricks__): the type the models and contracts call `varchar` is
    `string` there. Spark's parser rejects VARCHAR without a length
    ([DATATYPE_MISSING_SIZE]), and VARCHAR(n) would check lengths, so:

    spark__cast overrides dbt's cast for this project; dbt builds each
    contracted model's expected schema with it (`cast(null as <data_type>)`
    from the yml), so `data_type: varchar` in models/marts/*.yml works.
    Models themselves cast to text with `{{ dbt.type_string() }}`.

    Nothing here runs on DuckDB.
#}

{% macro spark_type_name(type) -%}
    {%- set normalized = (type | string).strip().lower() -%}
    {%- if normalized in ('varchar', 'text', 'character varying') -%}
        {{- return('string') -}}
    {%- else -%}
        {{- return(type) -}}
    {%- endif -%}
{%- endmacro %}

{% macro spark__cast(field, type) -%}
    cast({{ field }} as {{ offline_conversions.spark_type_name(type) }})
{%- endmacro %}


{#
    dbt's escape_single_quotes, which writes the text of unit test fixtures
    into SQL: on Spark a backslash in a literal is an escape too, so it is
    doubled as well (dbt-spark's escapes the quote only, and an expected
    JSON text with \" inside lost its backslash).
#}
{% macro spark__escape_single_quotes(expression) -%}
    {{ expression | replace("\\", "\\\\") | replace("'", "\\'") }}
{%- endmacro %}

{#
    A value as a Spark SQL literal: text quoted with backslash escapes (Spark
    reads '' inside a literal as two literals run together, dropping the
    quote).
#}
{% macro spark_literal(value) -%}
    {%- if value is none -%}
        null
    {%- elif value is boolean -%}
        {{ 'true' if value else 'false' }}
    {%- elif value is number -%}
        {{ value }}
    {%- else -%}
        '{{ (value | string) | replace("\\", "\\\\") | replace("'", "\\'") }}'
    {%- endif -%}
{%- endmacro %}

{#
    Seeds on Spark: dbt-spark's session method pastes bound values between
    quotes without escaping them, so "Côte d'Ivoire" breaks the insert. The
    rows are written as escaped literals instead; everything else is as in
    dbt-spark's spark__load_csv_rows.
#}
{% macro spark__load_csv_rows(model, agate_table) %}
    {%- set batch_size = get_batch_size() -%}
    {%- set column_override = model['config'].get('column_types', {}) -%}
    {%- set types = [] -%}
    {%- for col_name in agate_table.column_names -%}
        {%- do types.append(column_override.get(col_name, adapter.convert_type(agate_table, loop.index0))) -%}
    {%- endfor -%}
    {%- set statements = [] -%}
    {%- for chunk in agate_table.rows | batch(batch_size) -%}
        {%- set sql -%}
            insert into {{ this.render() }} values
            {% for row in chunk -%}
                ({%- for value in row -%}
                    cast({{ offline_conversions.spark_literal(value) }} as {{ types[loop.index0] }})
                    {%- if not loop.last %}, {% endif -%}
                {%- endfor -%})
                {%- if not loop.last %},{% endif %}
            {% endfor -%}
        {%- endset -%}
        {%- do adapter.add_query(sql, abridge_sql_log=True) -%}
        {%- if loop.index0 == 0 -%}
            {%- do statements.append(sql) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(statements[0]) }}
{% endmacro %}
