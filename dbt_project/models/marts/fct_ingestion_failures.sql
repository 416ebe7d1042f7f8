with

dead_letters as (

    select * from {{ ref('stg_ledger__dead_letters') }}

),

final as (

    select
        source,
        error_class,
        error_type,
        cast(failed_at at time zone 'UTC' as date) as failed_date,
        count(*) as failure_count,
        count(*) filter (where is_open) as open_failure_count,
        count(*) filter (where is_resolved) as resolved_failure_count,
        count(*) filter (where state = 'quarantined') as quarantined_failure_count,
        count(*) filter (where state = 'superseded') as superseded_failure_count

    from dead_letters
    group by 1, 2, 3, 4

)

select * from final
