{#
    Which bronze files a build may read: the committed ones, as the ledger snapshot (`ingestion_ledger`) says.

    Every attempt at a version writes its own manifest and data file (named by its lease); the ledger's SUCCESS
    of the attempt that won names its files. A run that lost its lease and finished a PUT late leaves a manifest
    no SUCCESS names (and removes it once it learns it lost): staging passes over it. A manifest the snapshot does
    not show committed yet is read by the first build after the snapshot that does.
#}


{#
    A condition on `relation_alias` (which has source, bucket, object_key, etag and manifest_key, the manifest's
    key under its root): true when the ledger snapshot `ledger_source` has the version SUCCESS with that manifest.
    A manifest written before attempts were recorded (no attempt in its name) counts for a SUCCESS that records
    none. Without any snapshot (a warehouse built from bronze alone) every manifest counts.
#}
{% macro is_committed_manifest(relation_alias, ledger_source) %}
    {%- if not execute -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set ledger = adapter.get_relation(
        database=ledger_source.database, schema=ledger_source.schema, identifier=ledger_source.identifier
    ) -%}
    {%- if ledger is none -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set columns = adapter.get_columns_in_relation(ledger) | map(attribute='name') | map('lower') | list -%}
    {%- set a = relation_alias -%}
    {%- set condition -%}
        exists (
            select 1
            from {{ ledger }} as committed
            where committed.status = 'SUCCESS'
                and committed.source = {{ a }}.source
                and committed.bucket is not distinct from {{ a }}.bucket
                and committed.object_key = {{ a }}.object_key
                and committed.etag = {{ a }}.etag
                {%- if 'bronze_manifest_key' in columns %}
                and (
                    committed.bronze_manifest_key = {{ a }}.manifest_key
                    or (committed.bronze_manifest_key is null and regexp_matches({{ a }}.manifest_key, '/[^/.]+\.parquet$'))
                )
                {%- endif %}
        )
    {%- endset -%}
    {{ return(condition) }}
{% endmacro %}


{#
    `wanted_query` (one column, `data_path`: data files of committed versions) less the files missing, as a list. A
    committed file that is missing (deleted by hand, lost by the store) is passed over with a warning instead of
    failing the build with an IO error; the `bronze_is_intact` check finds it and has the version landed again, or
    dead-lettered when its source no longer has it. The files are looked up one by one (a build's new versions: the
    cost follows what is new), or, past 200 of them (a full refresh), by one listing per root.
#}
{% macro present_bronze_files(dataset, wanted_query) %}
    {%- set wanted = run_query(wanted_query ~ " order by 1").columns[0].values() | list -%}
    {%- if not wanted -%}
        {{ return([]) }}
    {%- endif -%}
    {%- if wanted | length <= 200 -%}
        {%- set patterns = wanted -%}
    {%- else -%}
        {%- set patterns = [] -%}
        {%- for root in bronze_roots() -%}
            {%- do patterns.append(root.rstrip('/') ~ '/' ~ dataset ~ '/**/*.parquet') -%}
        {%- endfor -%}
    {%- endif -%}
    {%- set listings = [] -%}
    {%- for pattern in patterns -%}
        {%- do listings.append("select file from glob(" ~ sql_string(pattern) ~ ")") -%}
    {%- endfor -%}
    {%- set present = {} -%}
    {%- for file in run_query(listings | join(' union ')).columns[0].values() -%}
        {%- do present.update({file: true}) -%}
    {%- endfor -%}
    {%- set found = [] -%}
    {%- set missing = [] -%}
    {%- for path in wanted -%}
        {%- if path in present -%}
            {%- do found.append(path) -%}
        {%- else -%}
            {%- do missing.append(path) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if missing -%}
        {%- do exceptions.warn(
            "bronze: " ~ (missing | length) ~ " committed data file(s) of " ~ dataset ~ " missing, passed over "
            ~ "(the bronze_is_intact check lands them again or dead-letters them): " ~ (missing[:10] | join(', '))
        ) -%}
    {%- endif -%}
    {{ return(found) }}
{% endmacro %}
