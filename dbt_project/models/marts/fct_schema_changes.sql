with

schema_versions as (

    select * from {{ ref('stg_ledger__schema_versions') }}

),

final as (

    -- The versions whose schema differs from their source's schema before them (and each source's first), and
    -- those whose source's contract rescued or discarded something, or with a column renamed at landing.
    select
        schema_version_id,
        document_version_id,
        source,
        object_key,
        etag,
        recorded_at,
        is_first_schema,
        previous_fingerprint,
        fingerprint,
        column_count,
        cast(json_array_length(columns_added) as bigint) as added_count,
        cast(json_array_length(columns_removed) as bigint) as removed_count,
        cast(json_array_length(columns_retyped) as bigint) as retyped_count,
        cast(json_array_length(columns_renamed) as bigint) as renamed_count,
        columns_added,
        columns_removed,
        columns_retyped,
        columns_renamed,
        contract_mode,
        unexpected_columns,
        missing_columns,
        coalesce(rescued_rows, 0) as rescued_rows,
        coalesce(rescued_values, 0) as rescued_values,
        coalesce(discarded_values, 0) as discarded_values

    from schema_versions
    where is_first_schema
        or fingerprint <> previous_fingerprint
        or coalesce(rescued_rows, 0) > 0
        or coalesce(discarded_values, 0) > 0
        or json_array_length(columns_renamed) > 0

)

select * from final
