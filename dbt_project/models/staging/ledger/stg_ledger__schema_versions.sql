with

source as (

    select * from {{ ledger_relation(source('ledger', 'schema_versions')) }}

),

renamed as (

    select
        cast(id as bigint) as schema_version_id,
        {{ surrogate_key(['source', 'bucket', 'object_key', 'etag']) }} as document_version_id,
        source,
        bucket,
        object_key,
        etag,
        cast(recorded_at as timestamp with time zone) as recorded_at,
        fingerprint,
        previous_fingerprint,
        previous_fingerprint is null as is_first_schema,
        cast(json_array_length(columns_json) as bigint) as column_count,
        cast(columns_added as json) as columns_added,
        cast(columns_removed as json) as columns_removed,
        cast(columns_retyped as json) as columns_retyped,
        cast(columns_json as json) as columns

    from source

)

select * from renamed
