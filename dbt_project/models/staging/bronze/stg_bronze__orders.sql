{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='append_new_columns') }}

{%- set files = new_bronze_versions('tables/orders', this if is_incremental() else none) %}

with

documents as (

    select * from {{ ref('stg_bronze__documents') }}

),

source as (

    -- Only the data files of versions no earlier build has read.
    select * from {{ bronze_files(source('bronze', 'orders'), files) }}

),

renamed as (

    select
        documents.document_version_id,
        trim(cast(source.order_id as varchar)) as order_id,
        trim(cast(source.customer_id as varchar)) as customer_id,
        cast(source.order_date as date) as order_date,
        lower(trim(cast(source.status as varchar))) as status,
        cast(source.amount as decimal(12, 2)) as amount,
        upper(trim(cast(source.currency as varchar))) as currency,
        -- Under a rescue contract: what did not fit, as JSON; new columns of documents in evolve mode follow.
        source._rescued_data as rescued_data,
        {{- extra_bronze_columns(source('bronze', 'orders'), files, 'source', ['document_version_id', 'order_id', 'customer_id', 'order_date', 'status', 'amount', 'currency', 'rescued_data', 'source', 'object_key', 'etag', 'ingested_at', 'source_row_number', 'loaded_at']) }}
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
