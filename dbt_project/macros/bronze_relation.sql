{#
    Renders the bronze data behind a `bronze` source as a relation expression for a `from` clause:
    `read_parquet` over `meta.bronze_glob` under every root of the `bronze_roots` var that has files, or, when
    no root has any yet, an empty relation typed from the columns declared on the source.

    The model passes `source('bronze', ...)` in, so lineage stays in the dbt graph. The globs are checked at
    execution time because DuckDB fails on a glob that matches nothing.
#}
{% macro bronze_relation(source_relation) %}
    {%- if not execute -%}
        {{ return(source_relation) }}
    {%- endif -%}

    {%- set node = source_node(source_relation) -%}
    {%- if not node.config.meta.bronze_glob -%}
        {{ exceptions.raise_compiler_error(
            "bronze_relation() needs a source() with meta.bronze_glob, got " ~ source_relation.render()
        ) }}
    {%- endif -%}
    {%- set pattern = node.config.meta.bronze_glob -%}

    {%- set globs = [] -%}
    {%- for root in bronze_roots() -%}
        {%- set path = root.rstrip('/') ~ '/' ~ pattern -%}
        {%- if bronze_glob_has_files(path) -%}
            {%- do globs.append(path) -%}
        {%- endif -%}
    {%- endfor -%}

    {%- if globs -%}
        read_parquet(
            [{%- for path in globs -%}'{{ path | replace("'", "''") }}'{{ ", " if not loop.last }}{%- endfor -%}],
            union_by_name = true,
            hive_partitioning = false
        )
    {%- else -%}
        {{ empty_source_relation(node) }}
    {%- endif -%}
{% endmacro %}


{# The `bronze_roots` var as a list; a single string is accepted as a one-root list. #}
{% macro bronze_roots() %}
    {%- set roots = var('bronze_roots', []) -%}
    {%- if roots is string -%}
        {%- set roots = [roots] -%}
    {%- endif -%}
    {{ return(roots | reject('none') | list) }}
{% endmacro %}


{# True when the glob matches at least one file (local or through a registered fsspec filesystem). #}
{% macro bronze_glob_has_files(path) %}
    {%- set result = run_query("select 1 from glob('" ~ (path | replace("'", "''")) ~ "') limit 1") -%}
    {{ return(result.rows | length > 0) }}
{% endmacro %}
