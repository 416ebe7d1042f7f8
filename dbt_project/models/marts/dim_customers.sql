with

customers as (

    select * from {{ ref('stg_bronze__customers') }}

),

orders as (

    select * from {{ ref('fct_orders') }}

),

customer_orders as (

    select
        customer_id,
        count(*) as order_count,
        min(order_date) as first_order_date,
        max(order_date) as most_recent_order_date,
        cast(coalesce(sum(amount) filter (where is_revenue_eligible), 0) as decimal(18, 2)) as lifetime_revenue

    from orders
    group by 1

),

final as (

    select
        customers.customer_id,
        customers.customer_name,
        customers.email,
        customers.country,
        customers.signed_up_date,
        coalesce(customer_orders.order_count, 0) as order_count,
        customer_orders.first_order_date,
        customer_orders.most_recent_order_date,
        coalesce(customer_orders.lifetime_revenue, 0) as lifetime_revenue

    from customers
    left join customer_orders
        on customers.customer_id = customer_orders.customer_id

)

select * from final
