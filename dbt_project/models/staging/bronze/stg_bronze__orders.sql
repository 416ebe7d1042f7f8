with

source as (

    select * from {{ bronze_relation(source('bronze', 'orders')) }}

),

latest_document_versions as (

    {{ latest_document_versions('source') }}

),

renamed as (

    select
        trim(cast(order_id as varchar)) as order_id,
        trim(cast(customer_id as varchar)) as customer_id,
        cast(order_date as date) as order_date,
        lower(trim(cast(status as varchar))) as status,
        cast(amount as decimal(12, 2)) as amount,
        upper(trim(cast(currency as varchar))) as currency,
        _source as source,
        _object_key as object_key,
        _etag as etag,
        cast(_ingested_at as timestamp with time zone) as ingested_at,
        _document_modified_at as document_modified_at,
        _document_discovery_seq as document_discovery_seq,
        cast(_row_number as bigint) as source_row_number

    from latest_document_versions

),

deduplicated as (

    -- An order present in several current documents: the row of the latest document (by its own order) wins.
    select * from renamed
    qualify row_number() over (
        partition by order_id
        order by
            document_modified_at desc nulls last,
            document_discovery_seq desc nulls last,
            object_key desc,
            source_row_number desc
    ) = 1

)

select * from deduplicated
