with

orders as (

    select * from {{ ref('stg_bronze__orders') }}

),

final as (

    select
        order_id,
        customer_id,
        order_date,
        status,
        amount,
        currency,
        status not in ('cancelled', 'returned') as is_revenue_eligible,
        source,
        object_key,
        etag,
        ingested_at

    from orders

)

select * from final
