{{
    config(
        materialized='incremental',
        unique_key='document_version_id',
        on_schema_change='append_new_columns'
    )
}}

{%- set manifests = new_bronze_files(source('bronze', 'documents'), this if is_incremental() else none) %}

with

source as (

    -- Only the manifests no earlier build has read.
    select * from {{ bronze_files(source('bronze', 'documents'), manifests) }}

),

keyed as (

    -- The manifest's key under its root (documents/<source>/<document>/<etag>.<attempt>.parquet), as the ledger
    -- records the committed one.
    select *, regexp_extract(_bronze_file, '(documents/[^/]+/[^/]+/[^/]+)$', 1) as manifest_key
    from source

),

committed as (

    -- Only the manifest of the attempt whose SUCCESS the ledger recorded: a late write of a run that lost its
    -- lease is never read. A manifest not committed yet is read by a later build.
    select * from keyed
    where {{ is_committed_manifest('keyed', source('ledger', 'processed_files')) }}

),

renamed as (

    select
        {{ surrogate_key(['source', 'bucket', 'object_key', 'etag']) }} as document_version_id,
        source,
        bucket,
        object_key,
        partition_key,
        etag,
        sha256,
        content_type,
        lower(format) as format,
        cast(size_bytes as bigint) as size_bytes,
        cast(record_count as bigint) as record_count,
        columns_json,
        bronze_path,
        cast(last_modified_at as timestamp with time zone) as last_modified_at,
        cast(discovery_seq as bigint) as discovery_seq,
        cast(ingested_at as timestamp with time zone) as ingested_at,
        -- The dataset and data file of the version, next to its manifest under the same root (wherever the
        -- root has moved since `bronze_path` was written).
        case when lower(format) = 'text' then 'text' else 'tables/' || source end as bronze_dataset,
        _bronze_file as manifest_path,
        manifest_key,
        regexp_replace(
            _bronze_file,
            '/documents/([^/]+/[^/]+/[^/]+)$',
            case when lower(format) = 'text' then '/text/\1' else '/tables/\1' end
        ) as data_path,
        {{ build_started_at() }} as loaded_at

    from committed

),

deduplicated as (

    -- The same version listed under two roots counts once.
    select * from renamed
    qualify row_number() over (partition by document_version_id order by ingested_at desc, manifest_path) = 1

)

select * from deduplicated
