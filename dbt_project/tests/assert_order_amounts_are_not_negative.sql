-- An order never has a negative amount; refunds show up as the `returned` status instead.

select
    order_id,
    amount

from {{ ref('fct_orders') }}
where amount < 0
