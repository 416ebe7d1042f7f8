"""The sources file's options of a database table that make incremental loads safe: watermark_lag, primary_key
and bad_values, validated once at load with errors naming the option."""

import pytest
from pydantic import ValidationError

from ingestion_project.config import DatabaseTableConfig

INCREMENTAL = {"name": "payments", "load": "incremental", "watermark": "updated_at"}


def test_a_watermark_lag_is_a_duration_and_a_primary_key_a_list_of_columns():
    table = DatabaseTableConfig(**INCREMENTAL, watermark_lag="5m", primary_key="id")
    assert (table.watermark_lag, table.primary_key, table.bad_values) == (300.0, ("id",), "rescue")
    assert DatabaseTableConfig(**INCREMENTAL, watermark_lag=100, primary_key=["shop", "id"]).primary_key == (
        "shop",
        "id",
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"watermark_lag": "5m"}, "declare the primary_key"),
        ({"watermark_lag": "5m", "primary_key": "id", "load": "full"}, "applies to incremental loads"),
        ({"watermark_lag": "soon", "primary_key": "id"}, "is not a duration"),
        ({"primary_key": ["id", "ID"]}, "names each column once"),
        ({"primary_key": "id; drop table x"}, "is not a column name"),
        ({"bad_values": "ignore"}, "bad_values"),
    ],
)
def test_unsafe_or_malformed_options_are_refused(options, message):
    with pytest.raises(ValidationError, match=message):
        DatabaseTableConfig(**{**INCREMENTAL, **options})
