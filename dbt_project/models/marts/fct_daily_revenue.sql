with

orders as (

    select * from {{ ref('fct_orders') }}

),

final as (

    select
        order_date,
        count(*) as order_count,
        count(*) filter (where is_revenue_eligible) as revenue_order_count,
        cast(coalesce(sum(amount) filter (where is_revenue_eligible), 0) as decimal(18, 2)) as revenue,
        count(distinct customer_id) as customer_count

    from orders
    group by 1

)

select * from final
