"""Each limit of a source turns a hostile document into a validation error that names the limit and its value."""

import gzip
import io
import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingestion_project.lib.errors import LimitExceeded
from ingestion_project.lib.text_chunks import iter_chunks
from tests.lib.test_parsing import parse


def parquet_bytes(table: pa.Table, **options) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **options)
    return sink.getvalue()


def test_csv_header_over_the_column_limit_is_rejected_before_parsing():
    header = ",".join(f"c{i}" for i in range(5_000)).encode()
    with pytest.raises(
        LimitExceeded, match=r"the CSV header has 5,000 columns, over the limit of 1,000 \(limits\.columns\)"
    ):
        parse(header + b"\n" + b",".join([b"1"] * 5_000) + b"\n", "wide.csv", columns=1_000)


def test_csv_line_over_the_line_limit_is_rejected():
    data = b"id,payload\n1,short\n2," + b"x" * 200_000 + b"\n"
    with pytest.raises(LimitExceeded, match=r"line 3 is longer than the limit of 65,536 bytes \(limits\.line_length\)"):
        parse(data, "long.csv", line_bytes=65_536)


def test_rows_over_the_row_limit_are_rejected():
    data = b"id\n" + b"".join(b"%d\n" % i for i in range(1_001))
    with pytest.raises(LimitExceeded, match=r"more than 1,000 rows, over the limit of 1,000 \(limits\.rows\)"):
        parse(data, "many.csv", rows=1_000)


def test_rows_at_the_row_limit_are_accepted():
    data = b"id\n" + b"".join(b"%d\n" % i for i in range(1_000))
    assert parse(data, "many.csv", rows=1_000).record_count == 1_000


def test_ndjson_with_a_new_key_in_every_record_stops_at_the_key_limit():
    data = b"".join(json.dumps({f"key_{i}": i}).encode() + b"\n" for i in range(5_000))
    with pytest.raises(
        LimitExceeded, match=r"more than 1,000 distinct keys, over the limit of 1,000 \(limits\.json_keys\)"
    ):
        parse(data, "keys.ndjson", json_keys=1_000)


def test_ndjson_with_a_new_key_in_every_record_under_the_limit_keeps_every_value():
    records = [{f"key_{i}": i} for i in range(3_000)]
    parsed = parse(b"".join(json.dumps(r).encode() + b"\n" for r in records), "keys.ndjson")
    assert parsed.table.num_columns == 3_000
    assert parsed.table.column("key_2999").to_pylist()[-1] == 2_999
    assert parsed.table.column("key_0").null_count == 2_999


def test_json_nested_past_the_depth_limit_is_rejected():
    deep = {"a": 1}
    for _ in range(10):
        deep = {"n": deep}
    with pytest.raises(
        LimitExceeded, match=r"JSON array element 2 nests deeper than 8 levels.*\(limits\.nesting_depth\)"
    ):
        parse(json.dumps([{"ok": 1}, deep]).encode(), "deep.json", nesting_depth=8)


def test_parquet_that_inflates_past_the_limit_is_rejected_from_its_footer():
    table = pa.table({"blob": ["\0" * 1_000_000] * 8})
    with pytest.raises(
        LimitExceeded, match=r"Parquet data is [\d,]+ bytes uncompressed.*\(limits\.decompressed_size\)"
    ):
        parse(parquet_bytes(table, compression="zstd", use_dictionary=False), "bomb.parquet", limit=4_000_000)


def test_parquet_of_repeated_values_is_stopped_while_decoding():
    # Dictionary + run-length encoding keeps even the uncompressed pages tiny; only decoding shows the size.
    table = pa.table({"v": pa.repeat(pa.scalar("x" * 100), 200_000)})
    data = parquet_bytes(table, compression="zstd")
    assert len(data) < 50_000
    with pytest.raises(LimitExceeded, match=r"decodes to more than 2,000,000 bytes.*\(limits\.decompressed_size\)"):
        parse(data, "repeat.parquet", limit=2_000_000)


def test_parquet_with_more_rows_than_the_limit_is_rejected_from_its_footer():
    data = parquet_bytes(pa.table({"v": pa.repeat(pa.scalar(1), 5_000)}))
    with pytest.raises(LimitExceeded, match=r"Parquet file has 5,000 rows, over the limit of 1,000 \(limits\.rows\)"):
        parse(data, "rows.parquet", rows=1_000)


def test_gzip_limit_applies_to_what_the_parser_reads_not_the_download():
    data = gzip.compress(b"id\n" + b"1\n" * 600_000)
    assert len(data) < 10_000
    with pytest.raises(LimitExceeded, match=r"limits\.decompressed_size"):
        parse(data, "many.csv.gz", limit=1_000_000)


def test_csv_column_whose_type_changes_late_is_reread_as_strings_without_loss():
    rows = b"".join(b"%d,%d\n" % (i, i) for i in range(2_000_000))
    parsed = parse(b"a,b\n" + rows + b"7,x7\n", "drift.csv")
    assert parsed.table.schema.field("a").type == pa.int64()
    assert parsed.table.schema.field("b").type == pa.string()
    assert parsed.table.column("b")[-1].as_py() == "x7"
    assert parsed.record_count == 2_000_001


@pytest.mark.parametrize("seed", range(40))
def test_text_chunks_cover_the_text_in_order_within_the_size(seed):
    rng = random.Random(seed)
    lines = []
    for _ in range(rng.randint(1, 60)):
        kind = rng.random()
        if kind < 0.3:
            lines.append(" " * rng.randint(0, 3))
        elif kind < 0.4:
            lines.append("y" * rng.randint(100, 700))
        else:
            lines.append(" ".join("word" for _ in range(rng.randint(1, 20))))
    text = "\n".join(lines) + rng.choice(["", "\n"])
    size = rng.randint(20, 300)
    chunks = list(iter_chunks(io.StringIO(text), max_chars=size))
    position = 0
    for start, end, chunk in chunks:
        assert text[start:end] == chunk
        assert 0 < end - start <= size
        assert chunk.strip()
        # Whatever falls between chunks is whitespace only: no content is lost or repeated.
        assert start >= position
        assert not text[position:start].strip()
        position = end
    assert not text[position:].strip()


def test_parquet_of_ten_million_equal_values_is_stopped_as_a_compression_bomb():
    data = parquet_bytes(pa.table({"v": pa.repeat(pa.scalar(7), 10_000_000)}), compression="zstd")
    assert len(data) < 100_000
    with pytest.raises(LimitExceeded, match=r"Parquet data expands [\d,]+ times.*over the limit of 1,000 times"):
        parse(data, "equal.parquet", limit=2**40)


def test_gzip_that_expands_more_than_the_ratio_is_a_compression_bomb():
    data = gzip.compress(b"id\n" + b"1\n" * 50_000_000)
    with pytest.raises(LimitExceeded, match=r"gzip content expands [\d,]+ times.*\(limits\.expansion"):
        parse(data, "ones.csv.gz", limit=2**40)


def test_gzip_of_ordinary_text_is_within_the_expansion_limit():
    rows = b"".join(
        b"%d,customer-%d,2026-11-%02d,%d.%02d\n" % (i, i % 997, i % 28 + 1, i % 500, i % 100) for i in range(400_000)
    )
    parsed = parse(gzip.compress(b"id,customer,day,amount\n" + rows), "orders.csv.gz", limit=2**40)
    assert parsed.record_count == 400_000
