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
        ingested_at,
        row_number() over (
            partition by source, bucket, object_key
            order by ingested_at desc, etag desc
        ) = 1 as is_latest_version

    from documents

)

select * from final
