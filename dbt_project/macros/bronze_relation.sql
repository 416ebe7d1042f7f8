{#
    Bronze is read incrementally, and each file once: the staging models are incremental tables that read only
    the files a previous build has not. `stg_bronze__documents` reads the manifests it has not seen (listed under
    every root of the `bronze_roots` var); each data model reads the data files of the versions whose manifest it
    has not read yet (the manifest says where the data is). Everything downstream reads these tables, never bronze.

    A version is committed when the ledger's SUCCESS names its manifest (macros/committed_bronze.sql): every
    attempt writes its own files, so a data file or manifest of an attempt that failed or lost its lease is never
    read. A committed data file that has gone missing is passed over with a warning.
#}


{# Paths of the files matching the source's `meta.bronze_glob` under every root, less those in `loaded.<column>`. #}
{% macro new_bronze_files(source_relation, loaded=none, loaded_column='manifest_path') %}
    {%- if not execute -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set node = source_node(source_relation) -%}
    {%- if not node.config.meta.bronze_glob -%}
        {{ exceptions.raise_compiler_error(
            "new_bronze_files() needs a source() with meta.bronze_glob, got " ~ source_relation.render()
        ) }}
    {%- endif -%}
    {%- set listings = [] -%}
    {%- for root in bronze_roots() -%}
        {%- do listings.append(
            "select file from glob(" ~ sql_string(root.rstrip('/') ~ '/' ~ node.config.meta.bronze_glob) ~ ")"
        ) -%}
    {%- endfor -%}
    {%- if not listings -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set query -%}
        {{ listings | join(' union ') }}
        {%- if loaded is not none %} except select {{ loaded_column }} from {{ loaded }}{% endif %}
        order by 1
    {%- endset -%}
    {{ return(run_query(query).columns[0].values() | list) }}
{% endmacro %}


{#
    Data files of the committed versions of a bronze dataset (`tables/<source>` or `text`) that have rows, that
    `loaded` (the model being built, when incremental) holds no row of yet, and that exist (a missing one is passed
    over with a warning, see present_bronze_files).
#}
{% macro new_bronze_versions(dataset, loaded=none) %}
    {%- if not execute -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set query -%}
        select data_path
        from {{ ref('stg_bronze__documents') }}
        where bronze_dataset = {{ sql_string(dataset) }}
            and record_count > 0
            {%- if loaded is not none %}
            and document_version_id not in (select distinct document_version_id from {{ loaded }})
            {%- endif %}
    {%- endset -%}
    {{ return(present_bronze_files(dataset, query)) }}
{% endmacro %}


{#
    The rows of `paths` as a relation for a `from` clause, with each row's file in `_bronze_file`; every column
    declared on the source is there, typed, even when no file has it (or there are no files at all).
#}
{% macro bronze_files(source_relation, paths) %}
    {%- if not execute -%}
        {{ return(source_relation) }}
    {%- endif -%}
    {%- set node = source_node(source_relation) -%}
    (
        {%- if paths %}
        select *
        from read_parquet(
            [{%- for path in paths -%}{{ sql_string(path) }}{{ ", " if not loop.last }}{%- endfor -%}],
            union_by_name = true,
            hive_partitioning = false,
            filename = '_bronze_file'
        )
        union all by name
        {%- endif %}
        select *, cast(null as varchar) as _bronze_file
        from {{ empty_source_relation(node) }}
    )
{% endmacro %}


{# The `bronze_roots` var as a list; a single string is accepted as a one-root list. #}
{% macro bronze_roots() %}
    {%- set roots = var('bronze_roots', []) -%}
    {%- if roots is string -%}
        {%- set roots = [roots] -%}
    {%- endif -%}
    {{ return(roots | reject('none') | list) }}
{% endmacro %}


{# A SQL string literal. #}
{% macro sql_string(text) -%}
    '{{ text | replace("'", "''") }}'
{%- endmacro %}


{#
    When this build started (UTC), the same in every model of one `dbt build`: stamped on the rows a build loads,
    so that the models downstream of staging know which rows are new since they last ran.
#}
{% macro build_started_at() -%}
    cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}+00' as timestamp with time zone)
{%- endmacro %}


{#
    Columns the data files in `paths` have that the source does not declare: a document's new columns, which a
    source in `evolve` mode lands as they came. Staging models keep them (`extra_bronze_columns`) so that drift is
    never dropped silently.
#}
{% macro undeclared_bronze_columns(source_relation, paths) %}
    {%- if not execute or not paths -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set declared = source_node(source_relation).columns.keys() | map('lower') | list -%}
    {#- From the manifests already staged (their columns_json), not by reading the data files a second time. -#}
    {%- set query -%}
        select distinct column_entry ->> 'name' as name
        from {{ ref('stg_bronze__documents') }},
            unnest(cast(columns_json as json[])) as entries(column_entry)
        where data_path in (
            {%- for path in paths -%}{{ sql_string(path) }}{{ ", " if not loop.last }}{%- endfor -%}
        )
        order by 1
    {%- endset -%}
    {%- set extras = [] -%}
    {%- for name in run_query(query).columns[0].values() -%}
        {%- if name | lower not in declared -%}
            {%- do extras.append(name) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(extras) }}
{% endmacro %}


{#
    Select-list entries for the undeclared columns of `paths`, each as text under its own name (`extra_<name>`
    where the model already has that name). Text, because the same new column may arrive with other types in other
    documents, and an incremental table's column keeps its first type. Pair with
    `on_schema_change='append_new_columns'`, so a build that meets a new column adds it to the table.
#}
{% macro extra_bronze_columns(source_relation, paths, relation_alias, taken) %}
    {%- set taken = taken | map('lower') | list -%}
    {%- for name in undeclared_bronze_columns(source_relation, paths) %}
        {%- set alias = ('extra_' ~ name) if name | lower in taken else name %}
        cast({{ relation_alias }}.{{ adapter.quote(name) }} as varchar) as {{ adapter.quote(alias) }},
    {%- endfor %}
{% endmacro %}
