"""A small bronze dataset written exactly as docs/architecture.md ("Bronze layout") describes it.

Two roots: an S3-style root holding the `orders` and `customers` sources, and a local root holding the `notes`
text source. The January orders file is ingested twice (the second version drops ORD-1003, changes ORD-1001's
amount and returns ORD-1002), and the two orders files carry different column types, as CSV and NDJSON parsing
would give them.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

TIMESTAMP = pa.timestamp("us", tz="UTC")

# What the marts must show: the latest version of each document only.
EXPECTED_DAILY_REVENUE = {
    # order_date: (orders, revenue, customers)
    date(2026, 1, 5): (2, Decimal("120.00"), 2),  # ORD-1002 was returned in the second version
    date(2026, 1, 6): (1, Decimal("30.25"), 1),  # ORD-1003 is gone, ORD-1004 is new
    date(2026, 2, 1): (2, Decimal("200.00"), 2),  # ORD-2002 is cancelled
    date(2026, 2, 2): (1, Decimal("15.00"), 1),
}
EXPECTED_ORDER_IDS = {"ORD-1001", "ORD-1002", "ORD-1004", "ORD-2001", "ORD-2002", "ORD-2003"}


@dataclass(frozen=True)
class Version:
    """One ingested document version: its manifest facts and its parsed data."""

    source: str
    bucket: str
    key: str
    etag: str
    fmt: str
    ingested_at: datetime
    data: pa.Table
    committed: bool = True  # False: the data file landed but its manifest never did (the document failed)
    last_modified_at: datetime | None = None  # the object's LastModified; ingested_at when not given
    discovery_seq: int | None = None  # None: a manifest written before the column existed

    @property
    def is_text(self) -> bool:
        return self.fmt == "text"

    @property
    def tail(self) -> str:
        slug = re.sub(r"[^A-Za-z0-9._-]", "_", self.key[-48:])
        digest = hashlib.sha256(f"{self.bucket}\0{self.key}".encode()).hexdigest()[:16]
        etag = re.sub(r"[^A-Za-z0-9-]", "_", self.etag)
        return f"{self.source}/{slug}-{digest}/{etag}.parquet"

    @property
    def data_path(self) -> str:
        return f"{'text' if self.is_text else 'tables'}/{self.tail}"

    @property
    def manifest_path(self) -> str:
        return f"documents/{self.tail}"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(f"{self.key}@{self.etag}".encode()).hexdigest()

    def data_with_lineage(self) -> pa.Table:
        rows = self.data.num_rows
        table = self.data
        lineage = {
            "_source": pa.array([self.source] * rows, pa.string()),
            "_object_key": pa.array([self.key] * rows, pa.string()),
            "_etag": pa.array([self.etag] * rows, pa.string()),
            "_sha256": pa.array([self.sha256] * rows, pa.string()),
            "_ingested_at": pa.array([self.ingested_at] * rows, TIMESTAMP),
        }
        if not self.is_text:
            lineage["_row_number"] = pa.array(range(rows), pa.int64())
        for name, column in lineage.items():
            table = table.append_column(name, column)
        return table

    def manifest(self, root: str) -> pa.Table:
        row = {
            "source": self.source,
            "bucket": self.bucket,
            "object_key": self.key,
            "partition_key": f"{self.source}:{self.bucket}/{self.key}",
            "etag": self.etag,
            "size_bytes": 1000 + self.data.num_rows,
            "sha256": self.sha256,
            "content_type": None,
            "format": self.fmt,
            "record_count": self.data.num_rows,
            "columns_json": json.dumps([{"name": f.name, "type": str(f.type)} for f in self.data.schema]),
            "bronze_path": f"{root.rstrip('/')}/{self.data_path}",
            "last_modified_at": self.last_modified_at or self.ingested_at,
            "ingested_at": self.ingested_at,
        }
        if self.discovery_seq is None:
            return pa.Table.from_pylist(
                [row], schema=MANIFEST_SCHEMA.remove(MANIFEST_SCHEMA.get_field_index("discovery_seq"))
            )
        return pa.Table.from_pylist([{**row, "discovery_seq": self.discovery_seq}], schema=MANIFEST_SCHEMA)


MANIFEST_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("bucket", pa.string()),
        ("object_key", pa.string()),
        ("partition_key", pa.string()),
        ("etag", pa.string()),
        ("size_bytes", pa.int64()),
        ("sha256", pa.string()),
        ("content_type", pa.string()),
        ("format", pa.string()),
        ("record_count", pa.int64()),
        ("columns_json", pa.string()),
        ("bronze_path", pa.string()),
        ("last_modified_at", TIMESTAMP),
        ("ingested_at", TIMESTAMP),
        ("discovery_seq", pa.int64()),
    ]
)


def orders_csv(rows: list[tuple]) -> pa.Table:
    """Orders as the CSV parser infers them: dates as date32, amounts as float64."""
    ids, customers, days, statuses, amounts = zip(*rows, strict=True)
    return pa.table(
        {
            "order_id": pa.array(ids, pa.string()),
            "customer_id": pa.array(customers, pa.string()),
            "order_date": pa.array(days, pa.date32()),
            "status": pa.array(statuses, pa.string()),
            "amount": pa.array(amounts, pa.float64()),
            "currency": pa.array(["USD"] * len(rows), pa.string()),
        }
    )


def _orders_ndjson(rows: list[tuple]) -> pa.Table:
    """Orders as the NDJSON reader infers them: dates as strings, whole amounts as int64, other order."""
    ids, customers, days, statuses, amounts = zip(*rows, strict=True)
    return pa.table(
        {
            "currency": pa.array(["USD"] * len(rows), pa.string()),
            "order_id": pa.array(ids, pa.string()),
            "amount": pa.array(amounts, pa.int64()),
            "status": pa.array(statuses, pa.string()),
            "order_date": pa.array(days, pa.string()),
            "customer_id": pa.array(customers, pa.string()),
        }
    )


def versions() -> list[Version]:
    """Every document version of the fixture, oldest first."""
    jan_5, jan_6 = date(2026, 1, 5), date(2026, 1, 6)
    first_upload = datetime(2026, 1, 31, 10, 0, tzinfo=UTC)
    re_upload = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
    feb_upload = datetime(2026, 2, 1, 9, 5, tzinfo=UTC)
    orders_v1 = orders_csv(
        [
            ("ORD-1001", "C001", jan_5, "delivered", 100.00),
            ("ORD-1002", "C002", jan_5, "shipped", 50.50),
            ("ORD-1003", "C001", jan_6, "placed", 75.00),
        ]
    )
    orders_v2 = orders_csv(
        [
            ("ORD-1001", "C001", jan_5, "delivered", 120.00),
            ("ORD-1002", "C002", jan_5, "returned", 50.50),
            ("ORD-1004", "C003", jan_6, "delivered", 30.25),
        ]
    )
    orders_feb = _orders_ndjson(
        [
            ("ORD-2001", "C002", "2026-02-01", "delivered", 200),
            ("ORD-2002", "C003", "2026-02-01", "cancelled", 10),
            ("ORD-2003", "C001", "2026-02-02", "shipped", 15),
        ]
    )
    customers = pa.table(
        {
            "customer_id": ["C001", "C002", "C003"],
            "name": ["Ana Souza", "Liam O'Connor", "Mei Tanaka"],
            "email": ["ana.souza@example.com", "liam.oconnor@example.com", "mei.tanaka@example.jp"],
            "country": ["BR", "IE", "JP"],
            "signed_up_at": ["2025-03-14", "2025-05-02", "2025-06-21"],
        }
    )
    notes = pa.table(
        {
            "chunk_index": pa.array([0, 1], pa.int64()),
            "text": ["# Runbook\nRestart the sensor.", "Then check the warehouse."],
            "char_start": pa.array([0, 31], pa.int64()),
            "char_end": pa.array([31, 56], pa.int64()),
        }
    )
    # The first version of orders/2026-01.csv is large and slow: it finishes ingesting after the corrected second
    # version, which must still be the latest (by LastModified, not by ingestion time). customers is bronze from
    # before manifests carried discovery_seq.
    late_finish = datetime(2026, 2, 1, 9, 30, tzinfo=UTC)
    return [
        Version(
            "orders",
            "landing",
            "orders/2026-01.csv",
            "e1a",
            "csv",
            late_finish,
            orders_v1,
            last_modified_at=first_upload,
            discovery_seq=1,
        ),
        Version("customers", "landing", "customers/customers.json", "c1", "json", first_upload, customers),
        Version("orders", "landing", "orders/2026-01.csv", "e1b", "csv", re_upload, orders_v2, discovery_seq=3),
        Version(
            "orders", "landing", "orders/2026-02.ndjson", "f1-2", "ndjson", feb_upload, orders_feb, discovery_seq=4
        ),
        Version("notes", "", "guides/ops runbook.md", "t1", "text", feb_upload, notes, discovery_seq=5),
        Version(
            "orders",
            "landing",
            "orders/2026-01.csv",
            "e1c-orphan",
            "csv",
            datetime(2026, 2, 2, 8, 0, tzinfo=UTC),
            orders_csv([("ORD-9999", "C001", jan_6, "delivered", 999.00)]),
            committed=False,
        ),
    ]


def bronze_files(root_for_source: dict[str, str]) -> dict[str, dict[str, pa.Table]]:
    """The Parquet tables of each root, {root: {relative path: table}}; `root_for_source` maps the roots."""
    files: dict[str, dict[str, pa.Table]] = {}
    for version in versions():
        root = root_for_source[version.source]
        files.setdefault(root, {})[version.data_path] = version.data_with_lineage()
        if version.committed:
            files[root][version.manifest_path] = version.manifest(root)
    return files


def write_local(files: dict[str, pa.Table], root: Path) -> None:
    """Write one root's tables under a local directory."""
    for relative, table in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)


def parquet_bytes(table: pa.Table) -> bytes:
    """The table as a Parquet file, for a whole-object PUT."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()
