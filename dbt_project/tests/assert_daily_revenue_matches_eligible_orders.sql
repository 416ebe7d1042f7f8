{{ config(meta={'dagster': {'ref': {'name': 'fct_daily_revenue'}}}) }}

-- Every day's revenue equals the sum of that day's orders that are neither cancelled nor returned.

with

daily_revenue as (

    select * from {{ ref('fct_daily_revenue') }}

),

orders as (

    select * from {{ ref('fct_orders') }}

),

expected as (

    select
        order_date,
        coalesce(sum(amount) filter (where status not in ('cancelled', 'returned')), 0) as revenue

    from orders
    group by 1

)

select
    expected.order_date,
    expected.revenue as expected_revenue,
    daily_revenue.revenue as actual_revenue

from expected
full outer join daily_revenue
    on expected.order_date = daily_revenue.order_date
where daily_revenue.revenue is distinct from expected.revenue
