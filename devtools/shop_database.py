"""The sample `shop` database of the demo and `make dev`: a payments table, and the changes a second extraction
finds (new payments and a refund after the watermark)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Connection

PAYMENTS = """
    create table if not exists payments (
        id bigserial primary key,
        order_id text not null,
        amount numeric(12, 2) not null,
        status text not null,
        updated_at timestamptz not null default now()
    )
"""
# One payment per sample order of the first days (ids ORD-1001..ORD-1012), paid a minute apart.
FIRST_PAYMENTS = """
    insert into payments (order_id, amount, status, updated_at)
    select 'ORD-' || (1000 + n), round(10 + n * 7.35, 2), 'paid',
           timestamptz '2026-11-01 09:00+00' + n * interval '1 minute'
    from generate_series(1, 12) as n
"""


@contextmanager
def _transaction(url: str) -> Iterator[Connection]:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


def create_payments(url: str) -> int:
    """Create and fill the payments table (once); return its row count."""
    with _transaction(url) as conn:
        conn.execute(sa.text(PAYMENTS))
        if not conn.execute(sa.text("select count(*) from payments")).scalar():
            conn.execute(sa.text(FIRST_PAYMENTS))
        return conn.execute(sa.text("select count(*) from payments")).scalar()


def change_payments(url: str) -> None:
    """Two new payments and one refund, all after the watermark of the first extraction."""
    with _transaction(url) as conn:
        conn.execute(
            sa.text(
                "insert into payments (order_id, amount, status, updated_at) values "
                "('ORD-1035', 88.00, 'paid', now()), ('ORD-1039', 61.00, 'pending', now())"
            )
        )
        conn.execute(sa.text("update payments set status = 'refunded', updated_at = now() where id = 4"))


def payment_count(url: str) -> int:
    with _transaction(url) as conn:
        return conn.execute(sa.text("select count(*) from payments")).scalar()
