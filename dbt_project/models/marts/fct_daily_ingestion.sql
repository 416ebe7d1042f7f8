with

document_versions as (

    select * from {{ ref('fct_document_versions') }}

),

final as (

    select
        source,
        cast(ingested_at at time zone 'UTC' as date) as ingested_date,
        count(*) as document_count,
        cast(sum(size_bytes) as bigint) as size_bytes,
        cast(sum(record_count) as bigint) as record_count

    from document_versions
    group by 1, 2

)

select * from final
