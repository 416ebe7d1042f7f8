{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='append_new_columns') }}

{%- set files = new_bronze_versions('tables/customers', this if is_incremental() else none) %}

with

documents as (

    select * from {{ ref('stg_bronze__documents') }}

),

source as (

    -- Only the data files of versions no earlier build has read.
    select * from {{ bronze_files(source('bronze', 'customers'), files) }}

),

renamed as (

    select
        documents.document_version_id,
        trim(cast(source.customer_id as varchar)) as customer_id,
        trim(cast(source.name as varchar)) as customer_name,
        lower(trim(cast(source.email as varchar))) as email,
        trim(cast(source.country as varchar)) as country,
        cast(source.signed_up_at as date) as signed_up_date,
        -- Under a rescue contract: what did not fit, as JSON; new columns of documents in evolve mode follow.
        source._rescued_data as rescued_data,
        {{- extra_bronze_columns(source('bronze', 'customers'), files, 'source', ['document_version_id', 'customer_id', 'customer_name', 'email', 'country', 'signed_up_date', 'rescued_data', 'source', 'object_key', 'etag', 'ingested_at', 'source_row_number', 'loaded_at']) }}
        source._source as source,
        source._object_key as object_key,
        source._etag as etag,
        cast(source._ingested_at as timestamp with time zone) as ingested_at,
        cast(source._row_number as bigint) as source_row_number,
        documents.loaded_at

    from source
    inner join documents
        on source._bronze_file = documents.data_path

)

select * from renamed
