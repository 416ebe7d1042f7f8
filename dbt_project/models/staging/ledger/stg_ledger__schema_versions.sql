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
        cast(columns_json as json) as columns,
        -- Columns landed under another name because the document's was reserved (`_bronze_file` → `_bronze_file_1`).
        cast(to_json(list_transform(
            list_filter(cast(columns_json as json[]), lambda entry: (entry ->> 'renamed_from') is not null),
            lambda entry: json_object('from', entry ->> 'renamed_from', 'to', entry ->> 'name')
        )) as json) as columns_renamed,
        contract_json ->> 'mode' as contract_mode,
        cast(contract_json -> 'unexpected_columns' as json) as unexpected_columns,
        cast(contract_json -> 'missing_columns' as json) as missing_columns,
        cast(contract_json ->> 'rescued_rows' as bigint) as rescued_rows,
        cast(contract_json ->> 'rescued_values' as bigint) as rescued_values,
        cast(contract_json ->> 'discarded_values' as bigint) as discarded_values

    from source

)

select * from renamed
