import codecs
import gzip
import io
import json
import os
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingestion_project.lib.bronze import LINEAGE_COLUMNS, Lineage
from ingestion_project.lib.errors import UnsupportedFormatError, ValidationError
from ingestion_project.lib.formats import DocumentFormat
from ingestion_project.lib.keys import DocumentRef
from ingestion_project.lib.limits import DocumentLimits
from ingestion_project.lib.parsing import parse_document
from ingestion_project.lib.text_chunks import CHUNK_CHARS

LIMIT = 10 * 1024 * 1024
LINEAGE = Lineage(DocumentRef("s", "b", "k"), "etag", "0" * 64, datetime(2026, 1, 1, tzinfo=UTC))


@dataclass
class Parsed:
    """What parsing wrote, read back: the format, and the data rows without the lineage columns."""

    format: DocumentFormat
    table: pa.Table
    columns: list[dict[str, str]]  # as parse_document reports them (renamed_from included)

    @property
    def is_text(self) -> bool:
        return self.format is DocumentFormat.TEXT

    @property
    def record_count(self) -> int:
        return self.table.num_rows


def parse(data: bytes, key: str, content_type: str | None = None, limit: int = LIMIT, **limits: int) -> Parsed:
    out = os.path.join(tempfile.gettempdir(), f"parsed-{uuid.uuid4().hex}.parquet")
    try:
        parsed = parse_document(
            lambda: io.BytesIO(data),
            key,
            content_type,
            limits=DocumentLimits(decompressed_bytes=limit, **limits),
            lineage=LINEAGE,
            out_path=out,
        )
        table = pq.read_table(out)
    finally:
        if os.path.exists(out):
            os.remove(out)
    assert table.num_rows == parsed.record_count
    data_columns = [name for name in table.column_names if name not in LINEAGE_COLUMNS]
    landed = [{"name": c["name"], "type": c["type"]} for c in parsed.columns]
    assert landed == [{"name": f.name, "type": str(f.type)} for f in table.select(data_columns).schema]
    return Parsed(parsed.format, table.select(data_columns), parsed.columns)


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def test_csv_rows_and_inferred_types_are_parsed():
    parsed = parse(b"id,name,score\n1,alice,9.5\n2,bob,\n", "in/scores.csv", "text/csv")
    assert parsed.format is DocumentFormat.CSV
    assert not parsed.is_text
    assert parsed.record_count == 2
    assert parsed.table.schema.field("id").type == pa.int64()
    assert parsed.table.to_pylist() == [
        {"id": 1, "name": "alice", "score": 9.5},
        {"id": 2, "name": "bob", "score": None},
    ]


def test_tsv_is_split_on_tabs_only():
    parsed = parse(b"city\tnote\nParis\tbig, old\nOslo\tcold\n", "cities.tsv")
    assert parsed.format is DocumentFormat.TSV
    assert parsed.table.to_pylist() == [
        {"city": "Paris", "note": "big, old"},
        {"city": "Oslo", "note": "cold"},
    ]


def test_csv_quoted_newline_stays_in_one_value():
    parsed = parse(b'id,comment\n1,"line one\nline two"\n2,plain\n', "a.csv")
    assert parsed.table.column("comment").to_pylist() == ["line one\nline two", "plain"]


def test_csv_column_type_is_inferred_from_every_row_not_the_first_block():
    rows = b"".join(b"%d\n" % i for i in range(300_000))
    parsed = parse(b"value\n" + rows + b"not-a-number\n", "big.csv")
    assert parsed.table.schema.field("value").type == pa.string()
    assert parsed.table.column("value")[-1].as_py() == "not-a-number"


def test_formula_cells_are_kept_verbatim():
    data = b"name,cell\nalice,=SUM(A1:A3)\nbob,+1+2\ncarol,@cmd\ndave,-2+3\n"
    parsed = parse(data, "formulas.csv")
    assert parsed.table.column("cell").to_pylist() == ["=SUM(A1:A3)", "+1+2", "@cmd", "-2+3"]


def test_header_only_csv_is_rejected():
    with pytest.raises(ValidationError, match="CSV has a header row but no data rows"):
        parse(b"id,name\n\n", "a.csv")


def test_ragged_csv_names_the_line():
    data = b"id,name,score\n1,alice,3\n\n2,bob\n3,carol,4\n"
    with pytest.raises(ValidationError, match=r"CSV line 4 has 2 fields but the header has 3: '2,bob'") as info:
        parse(data, "a.csv")
    assert isinstance(info.value.__cause__, pa.ArrowInvalid)


def test_ragged_csv_with_extra_field_names_the_line():
    with pytest.raises(ValidationError, match="TSV line 3 has 3 fields but the header has 2"):
        parse(b"a\tb\n1\t2\n3\t4\t5\n", "a.tsv")


def test_csv_empty_column_name_is_rejected():
    with pytest.raises(ValidationError, match="CSV header: column 2 has an empty name"):
        parse(b"id,,name\n1,2,3\n", "a.csv")


def test_csv_duplicate_column_name_is_rejected():
    with pytest.raises(ValidationError, match=r"column 3 \('ID'\) duplicates the name of column 1"):
        parse(b"id,name,ID\n1,a,2\n", "a.csv")


@pytest.mark.parametrize("column", [*LINEAGE_COLUMNS, "_rescued_data", "_bronze_file", "_BRONZE_FILE"])
def test_csv_column_named_like_a_reserved_column_lands_renamed(column):
    parsed = parse(f"id,{column}\n1,x\n".encode(), "a.csv")
    assert parsed.table.column_names == ["id", f"{column}_1"]
    assert parsed.table.to_pylist() == [{"id": 1, f"{column}_1": "x"}]
    assert parsed.columns[1] == {"name": f"{column}_1", "type": "string", "renamed_from": column}
    assert "renamed_from" not in parsed.columns[0]


def test_a_rename_skips_names_the_document_already_has():
    parsed = parse(b"_bronze_file,_BRONZE_FILE_1,_source\na,b,c\n", "a.csv")
    assert parsed.table.column_names == ["_bronze_file_2", "_BRONZE_FILE_1", "_source_1"]
    assert parsed.table.to_pylist() == [{"_bronze_file_2": "a", "_BRONZE_FILE_1": "b", "_source_1": "c"}]


def test_json_column_named_like_a_lineage_column_lands_renamed():
    parsed = parse(b'[{"_ETAG": "x", "n": 1}]', "a.json")
    assert parsed.table.to_pylist() == [{"_ETAG_1": "x", "n": 1}]
    assert parsed.columns[0]["renamed_from"] == "_ETAG"


def test_parquet_column_named_like_a_lineage_column_lands_renamed():
    data = parquet_bytes(pa.table({"id": [1], "_row_number": [0]}))
    parsed = parse(data, "a.parquet")
    assert parsed.table.to_pylist() == [{"id": 1, "_row_number_1": 0}]


def test_json_array_of_objects_becomes_rows_with_missing_keys_null():
    parsed = parse(b'[{"id": 1, "name": "a"}, {"id": 2, "extra": true}]', "a.json", "application/json")
    assert parsed.format is DocumentFormat.JSON
    assert parsed.table.column_names == ["id", "name", "extra"]
    assert parsed.table.to_pylist() == [
        {"id": 1, "name": "a", "extra": None},
        {"id": 2, "name": None, "extra": True},
    ]


def test_json_single_object_is_one_row():
    parsed = parse(b'{"id": 7, "ok": false}', "one.json")
    assert parsed.record_count == 1
    assert parsed.table.to_pylist() == [{"id": 7, "ok": False}]


def test_json_nested_values_are_stored_as_json_strings():
    parsed = parse(b'[{"id": 1, "tags": ["x", "y"], "meta": {"k": "\xc3\xa9"}}]', "a.json")
    assert parsed.table.schema.field("tags").type == pa.string()
    row = parsed.table.to_pylist()[0]
    assert json.loads(row["tags"]) == ["x", "y"]
    assert json.loads(row["meta"]) == {"k": "é"}


def test_json_column_mixing_types_falls_back_to_strings():
    parsed = parse(b'[{"v": 1}, {"v": "two"}, {"v": true}, {"v": null}, {"v": {"n": 4}}]', "a.json")
    assert parsed.table.schema.field("v").type == pa.string()
    assert parsed.table.column("v").to_pylist() == ["1", "two", "true", None, '{"n":4}']


def test_json_integer_beyond_int64_falls_back_to_string():
    parsed = parse(b'[{"v": 123456789012345678901234567890}]', "a.json")
    assert parsed.table.column("v").to_pylist() == ["123456789012345678901234567890"]


def test_json_all_null_column_is_typed_string():
    parsed = parse(b'[{"id": 1, "v": null}, {"id": 2, "v": null}]', "a.json")
    assert parsed.table.schema.field("v").type == pa.string()


def test_json_scalar_document_is_rejected():
    with pytest.raises(ValidationError, match="JSON document is a number; expected an object or an array"):
        parse(b"42", "a.json")


def test_json_array_with_a_non_object_names_the_element():
    with pytest.raises(ValidationError, match="JSON array element 2 is a string; the array must hold objects only"):
        parse(b'[{"a": 1}, "b"]', "a.json")


def test_json_empty_array_is_rejected():
    with pytest.raises(ValidationError, match="JSON array is empty"):
        parse(b"[]", "a.json")


def test_json_syntax_error_names_line_and_column():
    with pytest.raises(ValidationError, match="JSON syntax error at line 3, column 9: Expecting value"):
        parse(b'[\n  {"a": 1},\n  {"a": }\n]', "a.json")


def test_ndjson_rows_are_parsed_and_blank_lines_skipped():
    parsed = parse(b'{"id": 1, "n": {"x": 1}}\n\n  \n{"id": 2}\n', "a.ndjson")
    assert parsed.format is DocumentFormat.NDJSON
    assert parsed.table.to_pylist() == [{"id": 1, "n": '{"x":1}'}, {"id": 2, "n": None}]


def test_ndjson_bad_line_names_the_line_number():
    data = b'{"id": 1}\n\n{"id": 2}\n{"id": 3,,}\n{"id": 4}\n'
    with pytest.raises(ValidationError, match=r"NDJSON line 4, column 10: invalid JSON"):
        parse(data, "a.jsonl")


def test_ndjson_line_that_is_not_an_object_is_rejected():
    with pytest.raises(ValidationError, match="NDJSON line 2 is an array; every line must be a JSON object"):
        parse(b'{"id": 1}\n[1, 2]\n', "a.ndjson")


def test_parquet_is_read_as_is():
    table = pa.table({"id": [1, 2, 3], "name": ["a", "b", None]})
    parsed = parse(parquet_bytes(table), "x/data.parquet", "application/octet-stream")
    assert parsed.format is DocumentFormat.PARQUET
    assert parsed.table.equals(table)


def test_truncated_parquet_is_rejected_with_the_arrow_error_as_cause():
    data = parquet_bytes(pa.table({"id": list(range(1000))}))
    with pytest.raises(
        ValidationError, match=r"not a valid Parquet file \([\d,]+ bytes; truncated or corrupt\?\)"
    ) as info:
        parse(data[: len(data) // 2], "data.parquet")
    assert isinstance(info.value.__cause__, pa.ArrowException | OSError)


def test_text_named_parquet_is_rejected_as_invalid_parquet():
    with pytest.raises(ValidationError, match="not a valid Parquet file"):
        parse(b"id,name\n1,a\n", "data.parquet")


def test_parquet_without_rows_is_rejected():
    with pytest.raises(ValidationError, match="Parquet file has no rows"):
        parse(parquet_bytes(pa.table({"id": pa.array([], pa.int64())})), "empty.parquet")


def test_empty_document_is_rejected():
    with pytest.raises(ValidationError, match="empty document: 0 bytes"):
        parse(b"", "a.csv")


def test_whitespace_only_document_is_rejected():
    with pytest.raises(ValidationError, match=r"empty document: only whitespace \(5 bytes\)"):
        parse(b" \n\t\r\n", "a.json")


def test_text_of_unicode_spaces_only_is_rejected_as_empty():
    with pytest.raises(ValidationError, match="empty document: only whitespace"):
        parse("\u00a0\u3000\n".encode(), "a.txt")


def test_invalid_utf8_names_the_byte_offset_and_line():
    with pytest.raises(ValidationError, match=r"not valid UTF-8 at byte offset 11 \(line 2\): byte 0xff"):
        parse(b"id,name\n1,a\xff\n", "a.csv")


def test_utf8_bom_is_stripped():
    parsed = parse(codecs.BOM_UTF8 + b"id,name\n1,a\n", "a.csv")
    assert parsed.table.column_names == ["id", "name"]


@pytest.mark.parametrize(("bom", "codec"), [(codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")])
def test_utf16_with_bom_is_transcoded_and_parsed(bom, codec):
    parsed = parse(bom + "id,name\n1,zoë\n".encode(codec), "a.csv")
    assert parsed.table.to_pylist() == [{"id": 1, "name": "zoë"}]


def test_invalid_utf16_is_rejected_with_offset():
    with pytest.raises(ValidationError, match="not valid UTF-16-LE text at byte offset"):
        parse(codecs.BOM_UTF16_LE + b"a\x00b", "a.txt")


def test_gzip_csv_is_decompressed_and_gz_suffix_ignored():
    parsed = parse(gzip.compress(b"id,name\n1,a\n"), "in/a.csv.gz", "application/gzip")
    assert parsed.format is DocumentFormat.CSV
    assert parsed.table.to_pylist() == [{"id": 1, "name": "a"}]


def test_concatenated_gzip_members_are_all_read():
    data = gzip.compress(b'{"id": 1}\n') + gzip.compress(b'{"id": 2}\n')
    assert parse(data, "a.ndjson.gz").table.column("id").to_pylist() == [1, 2]


def test_gzip_bomb_is_rejected_at_the_limit():
    bomb = gzip.compress(b"id,name\n" + b"1,a\n" * (12 * 1024 * 1024))
    with pytest.raises(ValidationError, match="more than the limit of 1,048,576 bytes"):
        parse(bomb, "bomb.csv.gz", limit=1024 * 1024)


def test_truncated_gzip_is_rejected():
    data = gzip.compress(b"id,name\n" + b"1,a\n" * 10_000)
    with pytest.raises(ValidationError, match="truncated gzip stream"):
        parse(data[: len(data) // 2], "a.csv.gz")


def test_corrupt_gzip_is_rejected():
    data = bytearray(gzip.compress(b"id,name\n1,a\n" * 100))
    data[12:20] = b"\xff" * 8
    with pytest.raises(ValidationError, match="corrupt gzip stream"):
        parse(bytes(data), "a.csv.gz")


def test_binary_named_csv_is_unsupported():
    with pytest.raises(UnsupportedFormatError, match=r"binary content \(NUL bytes\) in a document named \.csv"):
        parse(b"\x00\x01\x02\x03" * 64, "a.csv", "text/csv")


def test_nul_byte_beyond_the_sniffed_head_is_unsupported():
    data = b"id,name\n" + b"1,a\n" * 20_000 + b"2,\x00\n"
    with pytest.raises(UnsupportedFormatError, match=f"NUL byte at byte offset {len(data) - 2}"):
        parse(data, "a.csv")


def test_markdown_is_chunked_on_paragraphs_with_consistent_offsets():
    paragraphs = [f"## Section {i}\n\n" + f"Sentence {i} of the document. " * 40 for i in range(8)]
    text = "\n\n".join(paragraphs) + "\n"
    parsed = parse(text.encode(), "docs/guide.md", "text/markdown")
    assert parsed.format is DocumentFormat.TEXT
    assert parsed.is_text
    rows = parsed.table.to_pylist()
    assert parsed.table.schema == pa.schema(
        [
            ("chunk_index", pa.int64()),
            ("text", pa.string()),
            ("char_start", pa.int64()),
            ("char_end", pa.int64()),
        ]
    )
    assert len(rows) > 1
    assert [row["chunk_index"] for row in rows] == list(range(len(rows)))
    for row in rows:
        assert text[row["char_start"] : row["char_end"]] == row["text"]
        assert len(row["text"]) <= CHUNK_CHARS
        # Chunks start and end on paragraph boundaries.
        assert row["char_start"] == 0 or text[row["char_start"] - 2 : row["char_start"]] == "\n\n"
        assert text[row["char_end"] :].startswith("\n")
    assert "".join(row["text"] for row in rows).count("## Section") == 8


def test_text_crlf_is_normalized_before_offsets():
    parsed = parse(b"first para\r\nstill first\r\n\r\nsecond\r\n", "a.txt")
    expected = "first para\nstill first\n\nsecond"
    assert parsed.table.to_pylist() == [
        {"chunk_index": 0, "text": expected, "char_start": 0, "char_end": len(expected)}
    ]


def test_single_huge_line_is_split_hard_at_the_limit():
    line = "".join(chr(ord("a") + i % 26) for i in range(5_000))
    parsed = parse(line.encode(), "one-line.log")
    rows = parsed.table.to_pylist()
    assert [(row["char_start"], row["char_end"]) for row in rows] == [(0, 2000), (2000, 4000), (4000, 5000)]
    assert "".join(row["text"] for row in rows) == line
