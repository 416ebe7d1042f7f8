"""JSON and NDJSON flattening: the rows bronze holds are the records, whatever mix of keys they have.

The batches are made small here (BATCH_ROWS, BATCH_VALUES) so that a few records cross batch boundaries and
exercise the dense, sparse (runs) and absent column paths of one document.
"""

import io
import json
import os
import tempfile
import uuid
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingestion_project.lib import json_records
from ingestion_project.lib.bronze import LINEAGE_COLUMNS, Lineage
from ingestion_project.lib.keys import DocumentRef
from ingestion_project.lib.limits import DocumentLimits
from ingestion_project.lib.parsing import parse_document

LINEAGE = Lineage(DocumentRef("s", "b", "k"), "etag", "0" * 64, datetime(2026, 1, 1, tzinfo=UTC))


def landed(data: bytes, key: str) -> pa.Table:
    """The bronze file parsing writes for ``data``, read back (row numbers included)."""
    out = os.path.join(tempfile.gettempdir(), f"json-{uuid.uuid4().hex}.parquet")
    try:
        parse_document(lambda: io.BytesIO(data), key, None, limits=DocumentLimits(), lineage=LINEAGE, out_path=out)
        return pq.read_table(out)
    finally:
        if os.path.exists(out):
            os.remove(out)


def rows(table: pa.Table) -> list[dict]:
    data = [name for name in table.column_names if name not in LINEAGE_COLUMNS]
    return table.select(data).to_pylist()


@pytest.fixture(
    params=[(3, 1_000_000, 2**23), (1_000_000, 7, 2**23), (4096, 1_000_000, 0), (4096, 1_000_000, 2**23)],
    ids=["3-rows", "7-values", "no-padding", "default"],
)
def small_batches(request, monkeypatch):
    """Batches that close after a few rows, or after a few values; without padded columns; or the defaults."""
    batch_rows, batch_values, padded = request.param
    monkeypatch.setattr(json_records, "BATCH_ROWS", batch_rows)
    monkeypatch.setattr(json_records, "BATCH_VALUES", batch_values)
    monkeypatch.setattr(json_records, "BATCH_PADDED_CELLS", padded)


def sparse_records(count: int, keys: int) -> list[dict]:
    """Records cycling through ``keys`` keys, a few with a second key, and one key in every record."""
    records = []
    for i in range(count):
        record = {"id": i, f"key_{i % keys}": i * 3}
        if i % 5 == 0:
            record[f"other_{i % 4}"] = f"text {i}"
        records.append(record)
    return records


def expected(records: list[dict]) -> list[dict]:
    names = list(dict.fromkeys(name for record in records for name in record))
    return [{name: record.get(name) for name in names} for record in records]


@pytest.mark.parametrize("records_of", ["ndjson", "json"])
def test_sparse_keys_land_every_value_in_its_row_and_column(small_batches, records_of):
    records = sparse_records(200, keys=37)
    if records_of == "ndjson":
        data = b"".join(json.dumps(r).encode() + b"\n" for r in records)
    else:
        data = json.dumps(records, indent=1).encode()
    table = landed(data, f"sparse.{records_of}")
    assert table.column_names[:3] == ["id", "key_0", "other_0"]  # first-seen order
    assert rows(table) == expected(records)
    assert table.column("_row_number").to_pylist() == list(range(200))
    assert table.schema.field("key_5").type == pa.int64()
    assert table.schema.field("other_1").type == pa.string()


def test_a_column_with_values_in_most_rows_but_not_all_keeps_its_nulls(small_batches):
    records = [{"a": i} if i % 7 else {"b": True} for i in range(100)]
    table = landed(b"\n".join(json.dumps(r).encode() for r in records), "mostly.ndjson")
    assert rows(table) == expected(records)


def test_nested_values_and_mixed_kinds_become_text_as_written(small_batches):
    records = [
        {"id": 1, "tags": ["a", "b"], "attrs": {"k": 1.5}, "mixed": 1},
        {"id": 2, "mixed": "two"},
        {"id": 3, "tags": [], "attrs": {"k": {"deep": [1, None]}}, "mixed": True},
        {"id": 4, "mixed": None},
    ]
    table = landed(json.dumps(records).encode(), "nested.json")
    assert table.schema.field("tags").type == pa.string()
    assert rows(table) == [
        {"id": 1, "tags": '["a","b"]', "attrs": '{"k":1.5}', "mixed": "1"},
        {"id": 2, "tags": None, "attrs": None, "mixed": "two"},
        {"id": 3, "tags": "[]", "attrs": '{"k":{"deep":[1,null]}}', "mixed": "true"},
        {"id": 4, "tags": None, "attrs": None, "mixed": None},
    ]


def test_numbers_keep_what_was_written(small_batches):
    data = (
        b'{"n": 1, "x": 0.1, "big": 12345678901234567890, "exact": 0.12345678901234567, "wide": 1}\n'
        b'{"n": 2, "x": 2, "big": 1, "exact": 1.5, "wide": 1000000000000001}\n'
        b'{"n": 3}\n'
        b'{"n": 4, "x": 1e3, "wide": 7}\n'
    )
    table = landed(data, "numbers.ndjson")
    schema = table.schema
    assert (schema.field("n").type, schema.field("x").type) == (pa.int64(), pa.float64())
    assert schema.field("big").type == pa.string()  # beyond 64 bits: the digits as written
    assert schema.field("exact").type == pa.string()  # 17 significant digits: a double would round them
    assert schema.field("wide").type == pa.int64()  # integers above 10**15 are not doubled
    assert rows(table) == [
        {"n": 1, "x": 0.1, "big": "12345678901234567890", "exact": "0.12345678901234567", "wide": 1},
        {"n": 2, "x": 2.0, "big": "1", "exact": "1.5", "wide": 1000000000000001},
        {"n": 3, "x": None, "big": None, "exact": None, "wide": None},
        {"n": 4, "x": 1000.0, "big": None, "exact": None, "wide": 7},
    ]


def test_a_json_array_read_through_a_small_window_keeps_every_element(monkeypatch):
    monkeypatch.setattr(json_records._ArrayReader, "_READ", 64)
    records = [{"id": i, "text": "x" * (i % 150), f"k{i % 9}": i} for i in range(300)]
    data = json.dumps(records, indent=2).replace("},", "}   \n\t ,").encode()
    assert rows(landed(data, "windowed.json")) == expected(records)


def test_records_with_keys_near_the_limit_land_with_every_column():
    keys = 2_000
    data = b"".join(b'{"key_%d": %d}\n' % (i % keys, i) for i in range(3 * keys))
    table = landed(data, "keys.ndjson")
    assert table.num_columns == keys + len(LINEAGE_COLUMNS)
    assert [v for v in table.column("key_7").to_pylist() if v is not None] == [7, keys + 7, 2 * keys + 7]
    assert table.column("key_7").null_count == 3 * keys - 3
