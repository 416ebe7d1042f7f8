with

documents as (

    select * from {{ ref('stg_bronze__documents') }}

),

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
        bronze_path,
        last_modified_at,
        discovery_seq,
        ingested_at,
        -- By the object's own order, never by when ingestion finished: a large old version that lands after
        -- a corrected new one is not the latest.
        row_number() over (
            partition by source, bucket, object_key
            order by last_modified_at desc nulls last, discovery_seq desc nulls last, etag desc
        ) = 1 as is_latest_version

    from documents

)

select * from final
