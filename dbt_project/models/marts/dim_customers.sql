with

document_versions as (

    select * from {{ ref('fct_document_versions') }}

),

customers as (

    -- A customer present in several current documents: the row of the latest document (by its own order) wins.
    select customers.*
    from {{ ref('stg_bronze__customers') }} as customers
    inner join document_versions
        on customers.document_version_id = document_versions.document_version_id
    where document_versions.is_latest_version
        -- A version with a value that did not type is held back whole (fct_rejected_rows shows it).
        and not coalesce(customers.is_rejected_version, false)
    qualify row_number() over (
        partition by customers.customer_id
        order by
            {{ latest_first('document_versions.bucket', 'document_versions.last_modified_at', 'document_versions.discovery_seq') }},
            customers.object_key desc,
            customers.source_row_number desc
    ) = 1

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
