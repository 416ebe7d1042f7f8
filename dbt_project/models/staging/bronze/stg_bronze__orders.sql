{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='append_new_columns') }}

{%- set files = new_bronze_versions('tables/orders', this if is_incremental() else none) %}
{#- The typed columns: a value that does not read as its type is null here and listed in rejected_values. #}
{%- set typed = {'order_date': ['source.order_date', 'date'], 'amount': ['source.amount', 'decimal(12, 2)']} %}

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
        {{ typed_value('source.order_date', 'date') }} as order_date,
        lower(trim(cast(source.status as varchar))) as status,
        {{ typed_value('source.amount', 'decimal(12, 2)') }} as amount,
        upper(trim(cast(source.currency as varchar))) as currency,
        -- Without a contract: the values of this row that did not type; every row of such a version is held back.
        {{ rejected_values(typed) }} as rejected_values,
        -- Under a rescue contract: what did not fit, as JSON; new columns of documents in evolve mode follow.
        source._rescued_data as rescued_data,
        {{- extra_bronze_columns(source('bronze', 'orders'), files, 'source', ['document_version_id', 'order_id', 'customer_id', 'order_date', 'status', 'amount', 'currency', 'rejected_values', 'is_rejected_version', 'rescued_data', 'source', 'object_key', 'etag', 'ingested_at', 'source_row_number', 'loaded_at']) }}
        source._source as source,
        source._object_key as object_key,
        source._etag as etag,
        cast(source._ingested_at as timestamp with time zone) as ingested_at,
        cast(source._row_number as bigint) as source_row_number,
        documents.loaded_at

    from source
    inner join documents
        on source._bronze_file = documents.data_path

),

flagged as (

    -- A build reads every row of a version at once, so the window sees the whole document.
    select
        *,
        bool_or(rejected_values is not null) over (partition by document_version_id) as is_rejected_version
    from renamed

)

select * from flagged
