import codecs
import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingestion_project.lib.errors import UnsupportedFormatError
from ingestion_project.lib.formats import DecidedBy, DocumentFormat, detect, detect_format

CSV = b"id,name\n1,alice\n2,bob\n"


def _parquet_bytes() -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"id": [1, 2]}), sink)
    return sink.getvalue()


def test_only_text_is_not_tabular():
    assert [f for f in DocumentFormat if not f.is_tabular] == [DocumentFormat.TEXT]
    assert DocumentFormat.NDJSON.is_tabular
    assert str(DocumentFormat.PARQUET) == "parquet"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("in/a.csv", DocumentFormat.CSV),
        ("in/a.tsv", DocumentFormat.TSV),
        ("in/a.tab", DocumentFormat.TSV),
        # CSV content named for JSON is CSV: content decides where it is clear.
        ("in/a.json", DocumentFormat.CSV),
        ("in/a.ndjson", DocumentFormat.CSV),
        ("in/a.jsonl", DocumentFormat.CSV),
        # Named as text, lines with commas stay text: the name breaks the tie.
        ("in/a.txt", DocumentFormat.TEXT),
        ("in/a.md", DocumentFormat.TEXT),
        ("in/a.markdown", DocumentFormat.TEXT),
        ("in/a.text", DocumentFormat.TEXT),
        ("in/a.log", DocumentFormat.TEXT),
        ("in/A.CSV", DocumentFormat.CSV),
        ("in/a.csv.gz", DocumentFormat.CSV),
    ],
)
def test_extension_breaks_ties_content_decides_the_rest(key, expected):
    assert detect_format(key, None, CSV) is expected


def test_parquet_extension_decides_format():
    assert detect_format("a.parquet", None, _parquet_bytes()[:100]) is DocumentFormat.PARQUET


def test_extension_wins_over_generic_content_type():
    assert detect_format("a.csv", "text/plain", CSV) is DocumentFormat.CSV
    assert detect_format("notes.md", "application/octet-stream", b"# Title\n") is DocumentFormat.TEXT


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("text/csv; charset=utf-8", DocumentFormat.CSV),
        ("TEXT/TAB-SEPARATED-VALUES", DocumentFormat.TSV),
        ("application/json", DocumentFormat.CSV),
        ("application/x-ndjson", DocumentFormat.CSV),
        # What a store labels an upload without a content type: the content decides.
        ("text/plain; charset=us-ascii", DocumentFormat.CSV),
        ("text/markdown", DocumentFormat.TEXT),
    ],
)
def test_content_type_breaks_ties_when_key_has_no_known_extension(content_type, expected):
    assert detect_format("exports/latest", content_type, CSV) is expected


def test_parquet_content_type_decides_without_extension():
    head = _parquet_bytes()
    assert detect_format("blob", "application/vnd.apache.parquet", head) is DocumentFormat.PARQUET


def test_octet_stream_without_extension_falls_back_to_sniffing():
    assert detect_format("blob", "application/octet-stream", CSV) is DocumentFormat.CSV


def test_parquet_magic_wins_over_csv_extension():
    assert detect_format("mislabelled.csv", "text/csv", _parquet_bytes()) is DocumentFormat.PARQUET


def test_parquet_magic_detected_without_any_hint():
    assert detect_format("blob", None, _parquet_bytes()[:64]) is DocumentFormat.PARQUET


def test_csv_header_starting_with_par1_is_not_parquet():
    assert detect_format("a.csv", None, b"PAR1,PAR2\n1,2\n") is DocumentFormat.CSV


def test_binary_named_csv_is_unsupported_and_names_nul_bytes():
    with pytest.raises(UnsupportedFormatError, match=r"^binary content \(NUL bytes\) in a document named \.csv$"):
        detect_format("data.csv", "text/csv", b"id,name\n1,\x00\x01\x02\n")


@pytest.mark.parametrize(
    ("head", "name"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "PNG image"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "PDF"),
        (b"PK\x03\x04\x14\x00\x06\x00", "ZIP archive"),
        (b"\x1f\x8b\x08\x00", "gzip"),
    ],
)
def test_known_binary_signatures_are_unsupported(head, name):
    with pytest.raises(UnsupportedFormatError, match=rf"binary content \({name} signature\) in a document named \.txt"):
        detect_format("report.txt", "text/plain", head)


def test_binary_signature_rejected_even_with_parquet_extension():
    with pytest.raises(UnsupportedFormatError, match="PNG image"):
        detect_format("a.parquet", None, b"\x89PNG\r\n\x1a\n")


def test_high_ratio_of_control_bytes_is_unsupported():
    with pytest.raises(UnsupportedFormatError, match=r"binary content \(\d+% control bytes\) in a document without"):
        detect_format("blob", None, b"ab\x01\x02\x03\x04cd\x05\x06")


def test_utf16_without_bom_is_unsupported_with_a_hint():
    with pytest.raises(UnsupportedFormatError, match="looks like UTF-16 without a byte-order mark"):
        detect_format("a.csv", None, "id,name\n1,alice\n".encode("utf-16-le"))


def test_utf16_with_bom_is_transcoded_before_sniffing():
    head = codecs.BOM_UTF16_LE + "id\tname\n1\talice\n".encode("utf-16-le")
    assert detect_format("blob", None, head) is DocumentFormat.TSV


def test_utf32_is_unsupported():
    with pytest.raises(UnsupportedFormatError, match="UTF-32"):
        detect_format("a.txt", None, codecs.BOM_UTF32_LE + "hi".encode("utf-32-le"))


def test_json_array_is_sniffed_as_json():
    assert detect_format("blob", None, b' \n[{"a": 1}, {"a": 2}]') is DocumentFormat.JSON


def test_pretty_printed_json_object_is_sniffed_as_json():
    assert detect_format("blob", None, b'{\n  "a": 1,\n  "b": [1, 2]\n}\n') is DocumentFormat.JSON


def test_single_line_json_object_is_sniffed_as_json():
    assert detect_format("blob", None, b'{"a": 1}\n') is DocumentFormat.JSON


def test_object_per_line_is_sniffed_as_ndjson():
    assert detect_format("blob", None, b'{"a": 1}\n\n{"a": 2}\n{"a": 3}') is DocumentFormat.NDJSON


def test_ndjson_head_cut_mid_line_is_still_ndjson():
    assert detect_format("blob", None, b'{"a": 1}\n{"a": 2}\n{"a": "unfinish') is DocumentFormat.NDJSON


def test_json_extension_with_object_per_line_is_ndjson():
    assert detect_format("events.json", "application/json", b'{"a": 1}\n{"a": 2}\n') is DocumentFormat.NDJSON


def test_ndjson_extension_is_not_second_guessed():
    assert detect_format("a.ndjson", None, b'[{"a": 1}]') is DocumentFormat.NDJSON


def test_tab_delimited_content_is_sniffed_as_tsv():
    assert detect_format("blob", None, b"id\tname\n1\talice, the first\n") is DocumentFormat.TSV


def test_comma_delimited_content_is_sniffed_as_csv_even_when_cut_mid_row():
    assert detect_format("blob", None, b'id,name,note\n1,"a, b",x\n2,bob,y\n3,car') is DocumentFormat.CSV


def test_prose_is_sniffed_as_text():
    head = b"Hello, world.\nThis is a note without any table in it.\n\n- a list item\n"
    assert detect_format("README", None, head) is DocumentFormat.TEXT


def test_markdown_link_at_start_is_not_taken_for_json():
    assert detect_format("README", None, b"[![build](badge.svg)](ci)\n\n# Project\n") is DocumentFormat.TEXT


def test_empty_head_without_hints_is_text():
    assert detect_format("blob", None, b"") is DocumentFormat.TEXT


@pytest.mark.parametrize(
    ("key", "content_type", "head", "expected"),
    [
        ("exports/latest", "text/plain", CSV, (DocumentFormat.CSV, DecidedBy.CONTENT)),
        ("exports/latest", None, b'{"a": 1}\n{"a": 2}\n', (DocumentFormat.NDJSON, DecidedBy.CONTENT)),
        ("a.json", None, b'{"a": 1}\n{"a": 2}\n', (DocumentFormat.NDJSON, DecidedBy.CONTENT)),
        ("a.ndjson", None, b'{"a": 1}\n{"a": \n', (DocumentFormat.NDJSON, DecidedBy.EXTENSION)),
        ("a.csv", "text/csv", b"id\tname\n1\tann\n", (DocumentFormat.CSV, DecidedBy.EXTENSION)),
        ("notes.md", None, b"Hello, world\nfoo, bar\n", (DocumentFormat.TEXT, DecidedBy.EXTENSION)),
        ("single.csv", None, b"id\n1\n2\n", (DocumentFormat.CSV, DecidedBy.EXTENSION)),
        ("blob", "application/json", b"[]", (DocumentFormat.JSON, DecidedBy.CONTENT)),
        ("blob", None, _parquet_bytes(), (DocumentFormat.PARQUET, DecidedBy.CONTENT)),
        ("readme", None, b"Just words here\n", (DocumentFormat.TEXT, DecidedBy.CONTENT)),
    ],
    ids=[
        "csv-as-text-plain",
        "ndjson-no-name",
        "ndjson-named-json",
        "broken-ndjson",
        "tsv-named-csv",
        "prose-md",
        "one-column-csv",
        "json",
        "parquet",
        "prose",
    ],
)
def test_detection_says_which_signal_decided(key, content_type, head, expected):
    detection = detect(key, content_type, head)
    assert (detection.format, detection.decided_by) == expected
