-- Every document version the ledger discovered is in exactly one state. Returns the sources where the discovered
-- versions differ from succeeded + failed + skipped + superseded + quarantined + in flight, or where a version has
-- more than one ledger row (one row in SUCCESS and one in an unknown state would still add up).

with

conservation as (

    select * from {{ ref('fct_ingestion_conservation') }}

),

accounted as (

    select
        source,
        discovered_count,
        succeeded_count + failed_count + skipped_count + superseded_count + quarantined_count + in_flight_count
            as accounted_count,
        duplicated_version_count

    from conservation

)

select * from accounted
where discovered_count != accounted_count or duplicated_version_count > 0
