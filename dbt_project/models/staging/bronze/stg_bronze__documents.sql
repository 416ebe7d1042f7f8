with

source as (

    select * from {{ bronze_relation(source('bronze', 'documents')) }}
    -- Manifests written before discovery_seq existed lack the column: this keeps it, as null, in every case.
    union all by name
    select cast(null as bigint) as discovery_seq
    where false

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
        cast(ingested_at as timestamp with time zone) as ingested_at

    from source

),

deduplicated as (

    -- The same version listed under two roots (or rewritten in place) counts once.
    select * from renamed
    qualify row_number() over (partition by document_version_id order by ingested_at desc) = 1

)

select * from deduplicated
