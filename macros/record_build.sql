{#
    The build log the shipper checks before sending (docs/marts.md,
    "dbt_builds"). Called by the project's on-run-end hook with dbt's
    `results`: appends one row per model, seed, snapshot, data test and unit
    test of the invocation to the table dbt_builds in the target schema,
    which is created the first time and kept across builds. A `dbt build`
    whose unit tests fail leaves the previous build's mart tables in place;
    this table is how the shipper knows they are stale.

    Plain SQL through the adapter (create schema / table if not exists,
    insert ... values); only the text literal differs between warehouses.
#}

{% macro record_build(results) -%}
    {%- if not execute -%}
        {{ return('') }}
    {%- endif -%}
    {%- set recorded_types = ['model', 'seed', 'snapshot', 'test', 'unit_test'] -%}
    {%- set rows = [] -%}
    {%- set as_of = offline_conversions.as_of_text() -%}
    {%- set finished_at = modules.datetime.datetime.utcnow().strftime('%Y-%m-%d %H:%M:%S.%f') -%}
    {%- set command = flags.WHICH -%}
    {%- for result in results -%}
        {%- set node = result.node -%}
        {%- if node.resource_type in recorded_types -%}
            {%- do rows.append([
                invocation_id,
                as_of,
                finished_at,
                node.name,
                node.resource_type | string,
                offline_conversions.build_tested_model(node),
                result.status | string,
                modules.re.sub('\x1b\\[[0-9;]*m', '', (result.message or '') | string)[:1000] or none,
                command,
            ]) -%}
        {%- endif -%}
    {%- endfor -%}

    {#- Spark's target has no database: the default one then. -#}
    {%- set relation = api.Relation.create(
        database=target.get('database'), schema=target.schema, identifier='dbt_builds') -%}
    {%- do adapter.create_schema(relation) -%}
    {%- set text = dbt.type_string() -%}
    {%- do run_query(
        'create table if not exists ' ~ relation ~ ' ('
        ~ 'invocation_id ' ~ text ~ ', '
        ~ 'as_of ' ~ text ~ ', '
        ~ 'finished_at ' ~ dbt.type_timestamp() ~ ', '
        ~ 'node_name ' ~ text ~ ', '
        ~ 'resource_type ' ~ text ~ ', '
        ~ 'tested_model ' ~ text ~ ', '
        ~ 'status ' ~ text ~ ', '
        ~ 'message ' ~ text ~ ', '
        ~ 'command ' ~ text ~ ')') -%}

    {#- In batches: one statement of a few hundred rows is fine everywhere. -#}
    {%- for batch in rows | batch(200) -%}
        {%- set values = [] -%}
        {%- for row in batch -%}
            {%- do values.append(
                '(' ~ offline_conversions.text_literal(row[0])
                ~ ', ' ~ offline_conversions.text_literal(row[1])
                ~ ', cast(' ~ offline_conversions.text_literal(row[2]) ~ ' as ' ~ dbt.type_timestamp() ~ ')'
                ~ ', ' ~ offline_conversions.text_literal(row[3])
                ~ ', ' ~ offline_conversions.text_literal(row[4])
                ~ ', ' ~ offline_conversions.text_literal(row[5])
                ~ ', ' ~ offline_conversions.text_literal(row[6])
                ~ ', ' ~ offline_conversions.text_literal(row[7])
                ~ ', ' ~ offline_conversions.text_literal(row[8]) ~ ')') -%}
        {%- endfor -%}
        {%- do run_query('insert into ' ~ relation ~ ' values ' ~ values | join(', ')) -%}
    {%- endfor -%}
    {{ return('') }}
{%- endmacro %}

{#
    The model a node builds or checks: its own name for a model, seed or
    snapshot; the model a data test is attached to, or a unit test tests;
    for a singular test, its one model parent (NULL when it has several).
#}
{% macro build_tested_model(node) -%}
    {%- set unique_id = none -%}
    {%- if node.resource_type in ['model', 'seed', 'snapshot'] -%}
        {{ return(node.name) }}
    {%- elif node.resource_type == 'unit_test' -%}
        {%- set unique_id = node.tested_node_unique_id -%}
    {%- elif node.attached_node -%}
        {%- set unique_id = node.attached_node -%}
    {%- else -%}
        {%- set parents = [] -%}
        {%- for parent in node.depends_on.nodes if parent.startswith('model.') -%}
            {%- do parents.append(parent) -%}
        {%- endfor -%}
        {%- if parents | length == 1 -%}
            {%- set unique_id = parents[0] -%}
        {%- endif -%}
    {%- endif -%}
    {%- if unique_id -%}
        {{ return(unique_id.split('.')[-1]) }}
    {%- endif -%}
    {{ return(none) }}
{%- endmacro %}

{# A value as a SQL text literal (NULL for none). #}
{% macro text_literal(value) -%}
    {{ return(adapter.dispatch('text_literal', 'offline_conversions')(value)) }}
{%- endmacro %}

{% macro default__text_literal(value) -%}
    {%- if value is none -%}
        {{ return('null') }}
    {%- endif -%}
    {{ return("'" ~ (value | string) | replace("'", "''") ~ "'") }}
{%- endmacro %}

{% macro spark__text_literal(value) -%}
    {%- if value is none -%}
        {{ return('null') }}
    {%- endif -%}
    {{ return("'" ~ (value | string) | replace("\\", "\\\\") | replace("'", "\\'") ~ "'") }}
{%- endmacro %}
