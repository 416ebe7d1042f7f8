with

processed_files as (

    select * from {{ ref('stg_ledger__processed_files') }}

),

versions as (

    select
        source,
        bucket,
        object_key,
        etag,
        count(*) as ledger_row_count

    from processed_files
    group by 1, 2, 3, 4

),

discovered as (

    select
        source,
        count(*) as discovered_count,
        count(*) filter (where ledger_row_count > 1) as duplicated_version_count

    from versions
    group by 1

),

states as (

    select
        source,
        count(*) filter (where status = 'SUCCESS') as succeeded_count,
        count(*) filter (where status = 'FAILED') as failed_count,
        count(*) filter (where status = 'SKIPPED') as skipped_count,
        count(*) filter (where status = 'SUPERSEDED') as superseded_count,
        count(*) filter (where status = 'QUARANTINED') as quarantined_count,
        count(*) filter (where is_in_flight) as in_flight_count

    from processed_files
    group by 1

),

final as (

    select
        discovered.source,
        discovered.discovered_count,
        states.succeeded_count,
        states.failed_count,
        states.skipped_count,
        states.superseded_count,
        states.quarantined_count,
        states.in_flight_count,
        discovered.duplicated_version_count,
        -- A version with two rows, or in an unknown state, breaks the balance.
        discovered.discovered_count = states.succeeded_count + states.failed_count + states.skipped_count
            + states.superseded_count + states.quarantined_count + states.in_flight_count as is_balanced

    from discovered
    inner join states
        on discovered.source = states.source

)

select * from final
