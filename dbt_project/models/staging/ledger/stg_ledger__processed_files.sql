with

source as (

    select * from {{ ledger_relation(source('ledger', 'processed_files')) }}

),

renamed as (

    select
        cast(id as bigint) as processed_file_id,
        {{ surrogate_key(['source', 'bucket', 'object_key', 'etag']) }} as document_version_id,
        source,
        bucket,
        object_key,
        etag,
        partition_key,
        sha256,
        status,
        status in ('DISCOVERED', 'PROCESSING') as is_in_flight,
        cast(size_bytes as bigint) as size_bytes,
        cast(records_ingested as bigint) as records_ingested,
        cast(bytes_read as bigint) as bytes_read,
        cast(duration_ms as bigint) as duration_ms,
        error_class,
        error_type,
        error_message,
        cast(retry_count as integer) as retry_count,
        run_id,
        cast(modified_at as timestamp with time zone) as last_modified_at,
        cast(discovered_at as timestamp with time zone) as discovered_at,
        cast(requested_at as timestamp with time zone) as requested_at,
        cast(processing_started_at as timestamp with time zone) as processing_started_at,
        cast(processed_at as timestamp with time zone) as processed_at,
        cast(snapshot_at as timestamp with time zone) as snapshot_at

    from source

)

select * from renamed
