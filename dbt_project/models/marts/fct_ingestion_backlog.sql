with

processed_files as (

    select * from {{ ref('stg_ledger__processed_files') }}

),

current_versions as (

    -- A document overwritten with a new ETag counts once, in the state of its newest version.
    select * from processed_files
    qualify row_number() over (
        partition by source, bucket, object_key
        order by discovered_at desc, processed_file_id desc
    ) = 1

),

final as (

    select
        source,
        status,
        is_in_flight,
        count(*) as document_count,
        cast(sum(size_bytes) as bigint) as size_bytes,
        min(discovered_at) as oldest_discovered_at

    from current_versions
    group by 1, 2, 3

)

select * from final
