"""Bronze keeps what a delimited file said: a column is typed only where every value reads back exactly."""

from datetime import date

import pyarrow as pa
import pytest

from tests.lib.test_parsing import parse


def column(csv_text: str, name: str = "v") -> tuple[pa.DataType, list]:
    parsed = parse(csv_text.encode(), "edge.csv")
    return parsed.table.schema.field(name).type, parsed.table.column(name).to_pylist()


def one_column(*values: str) -> str:
    return "id,v\n" + "".join(f"{i},{value}\n" for i, value in enumerate(values))


def test_a_zip_code_with_a_leading_zero_stays_text():
    # The published edge case comma_in_quotes.csv: "08123" must not land as the integer 8123.
    text = 'first,last,address,city,zip\nJohn,Doe,120 any st.,"Anytown, WW",08123\nJane,Roe,1 main st.,Town,90210\n'
    assert column(text, "zip") == (pa.string(), ["08123", "90210"])
    assert column(text, "city") == (pa.string(), ["Anytown, WW", "Town"])


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (("1", "-20", "0"), (pa.int64(), [1, -20, 0])),
        (("9223372036854775807", "1"), (pa.int64(), [9223372036854775807, 1])),
        # Past 64 bits: a double would round it.
        (("9223372036854775808", "1"), (pa.string(), ["9223372036854775808", "1"])),
        (("123456789012345678901234567890",), (pa.string(), ["123456789012345678901234567890"])),
        (("+5", "1"), (pa.string(), ["+5", "1"])),
        (("-0", "1"), (pa.string(), ["-0", "1"])),
        (("007", "1"), (pa.string(), ["007", "1"])),
    ],
    ids=["ints", "int64-max", "past-int64", "30-digits", "plus-sign", "minus-zero", "leading-zeros"],
)
def test_integers_are_typed_only_when_they_read_back_exactly(values, expected):
    assert column(one_column(*values)) == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (("1.5", "-0.25", "3"), (pa.float64(), [1.5, -0.25, 3.0])),  # whole numbers among them too
        (("123456789012.345", "1.5"), (pa.float64(), [123456789012.345, 1.5])),  # 15 digits
        (("0.000000000001234", "1.5"), (pa.float64(), [0.000000000001234, 1.5])),  # leading zeros are not digits
        # 17 significant digits: a double cannot hold them all.
        (("12345678901234.567", "1.5"), (pa.string(), ["12345678901234.567", "1.5"])),
        (("1e5", "2.5"), (pa.string(), ["1e5", "2.5"])),
        (("12.50 EUR", "1.5"), (pa.string(), ["12.50 EUR", "1.5"])),
        (("NaN", "1.5"), (pa.string(), ["NaN", "1.5"])),
    ],
    ids=["floats", "15-digits", "small", "17-digits", "exponent", "unit", "nan"],
)
def test_decimals_are_floats_only_within_fifteen_significant_digits(values, expected):
    assert column(one_column(*values)) == expected


def test_booleans_and_dates_only_in_their_canonical_form():
    assert column(one_column("true", "false")) == (pa.bool_(), [True, False])
    assert column(one_column("TRUE", "false")) == (pa.string(), ["TRUE", "false"])
    assert column(one_column("2026-02-28", "2026-11-01")) == (pa.date32(), [date(2026, 2, 28), date(2026, 11, 1)])
    assert column(one_column("2026-02-30", "2026-11-01")) == (pa.string(), ["2026-02-30", "2026-11-01"])
    assert column(one_column("2026-11-01T10:00:00+02:00")) == (pa.string(), ["2026-11-01T10:00:00+02:00"])


def test_an_empty_value_is_null_in_a_typed_column_and_empty_text_in_a_text_column():
    assert column(one_column("1", "", "3")) == (pa.int64(), [1, None, 3])
    assert column(one_column("a", "", "c")) == (pa.string(), ["a", "", "c"])
    assert column(one_column("NA", "1")) == (pa.string(), ["NA", "1"])  # "NA" is text, not a silent null
    assert column(one_column("", "")) == (pa.string(), ["", ""])


def json_column(body: str, key: str = "json.json", name: str = "v") -> tuple[pa.DataType, list]:
    parsed = parse(body.encode(), key)
    return parsed.table.schema.field(name).type, parsed.table.column(name).to_pylist()


def test_json_decimals_past_fifteen_digits_stay_as_written():
    assert json_column('[{"v": 12345678901234.567}, {"v": 1.5}]') == (pa.string(), ["12345678901234.567", "1.5"])
    assert json_column('{"v": 0.1}\n{"v": 2.5}\n', "lines.ndjson") == (pa.float64(), [0.1, 2.5])
    assert json_column('[{"v": 0.000000000001234}, {"v": 1e5}]') == (pa.float64(), [0.000000000001234, 100000.0])


def test_json_integers_too_wide_for_a_double_keep_a_mixed_column_as_text():
    assert json_column('[{"v": 1}, {"v": 2.5}]') == (pa.float64(), [1.0, 2.5])
    assert json_column('[{"v": 9007199254740993}, {"v": 2}]') == (pa.int64(), [9007199254740993, 2])
    assert json_column('[{"v": 9007199254740993}, {"v": 2.5}]') == (pa.string(), ["9007199254740993", "2.5"])
