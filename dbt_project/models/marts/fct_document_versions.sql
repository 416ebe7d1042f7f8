{#
    Incremental on the document: a build re-ranks only the documents that have a version it has not seen (all
    versions of each, so an older one that lands late never becomes the latest) and replaces their rows.
#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['source', 'bucket', 'object_key']
    )
}}

with

documents as (

    select * from {{ ref('stg_bronze__documents') }}

),

{% if is_incremental() %}

changed_documents as (

    select distinct source, bucket, object_key
    from documents
    where loaded_at > (select coalesce(max(loaded_at), '-infinity') from {{ this }})

),

documents_to_rank as (

    select documents.*
    from documents
    inner join changed_documents
        using (source, bucket, object_key)

),

{% else %}

documents_to_rank as (

    select * from documents

),

{% endif %}

final as (

    select
        document_version_id,
        source,
        bucket,
        object_key,
        etag,
        sha256,
        format,
        content_type,
        size_bytes,
        record_count,
        bronze_dataset,
        bronze_path,
        last_modified_at,
        discovery_seq,
        ingested_at,
        loaded_at,
        -- By the object's own order, never by when ingestion finished: a large old version that lands after
        -- a corrected new one is not the latest. Buckets by LastModified, local folders by discovery.
        row_number() over (
            partition by source, bucket, object_key
            order by {{ latest_first('bucket', 'last_modified_at', 'discovery_seq') }}, etag desc
        ) = 1 as is_latest_version

    from documents_to_rank

)

select * from final
