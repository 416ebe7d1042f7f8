with

source as (

    select * from {{ ledger_relation(source('ledger', 'dead_letters')) }}

),

renamed as (

    select
        dlq_key,
        source,
        bucket,
        object_key,
        etag,
        partition_key,
        content_type,
        cast(size_bytes as bigint) as size_bytes,
        error_class,
        error_type,
        error_message,
        cast(retry_count as integer) as retry_count,
        cast(max_retries as integer) as max_retries,
        state,
        state = 'open' as is_open,
        cast(is_resolved as boolean) as is_resolved,
        run_id,
        cast(failed_at as timestamp with time zone) as failed_at,
        cast(closed_at as timestamp with time zone) as closed_at,
        cast(snapshot_at as timestamp with time zone) as snapshot_at

    from source

)

select * from renamed
