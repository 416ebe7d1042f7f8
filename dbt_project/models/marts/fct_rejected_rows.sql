{#
    The values staging could not type, one row each: without a schema contract a document may hold `12.50 EUR`
    in an amount or `soon` in a date. The build goes on; the document version that holds such a value is held
    back whole from the marts (fct_orders, dim_customers) rather than landing partly, and shows here with every
    value that did not type. A corrected version of the document replaces it as usual.
#}

with

orders as (

    select 'orders' as dataset, * from {{ ref('stg_bronze__orders') }}
    where rejected_values is not null

),

customers as (

    select 'customers' as dataset, * from {{ ref('stg_bronze__customers') }}
    where rejected_values is not null

),

rejected as (

    select dataset, document_version_id, source, object_key, etag, source_row_number, loaded_at, rejected_values
    from orders
    union all
    select dataset, document_version_id, source, object_key, etag, source_row_number, loaded_at, rejected_values
    from customers

),

document_rows as (

    select document_version_id, count(*) as row_count
    from {{ ref('stg_bronze__orders') }}
    where document_version_id in (select document_version_id from orders)
    group by 1
    union all
    select document_version_id, count(*) as row_count
    from {{ ref('stg_bronze__customers') }}
    where document_version_id in (select document_version_id from customers)
    group by 1

),

final as (

    select
        rejected.dataset,
        rejected.document_version_id,
        rejected.source,
        rejected.object_key,
        rejected.etag,
        rejected.source_row_number,
        entry ->> 'column' as column_name,
        entry ->> 'value' as rejected_value,
        document_rows.row_count as document_row_count,
        rejected.loaded_at

    from rejected
    cross join unnest(cast(rejected.rejected_values as json[])) as entries(entry)
    inner join document_rows
        on rejected.document_version_id = document_rows.document_version_id

)

select * from final
