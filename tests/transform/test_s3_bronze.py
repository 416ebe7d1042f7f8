"""dbt reads bronze from S3 through the profile's fsspec filesystem, configured only by the AWS_* environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.transform import bronze_fixture
from tests.transform.conftest import build_warehouse


def test_warehouse_builds_from_an_s3_bronze_root(
    s3_env: dict[str, str],
    s3_client,
    fresh_bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    root = f"s3://{fresh_bucket}/bronze"
    files = bronze_fixture.bronze_files({"orders": root, "customers": root, "notes": root})
    for relative, table in files[root].items():
        s3_client.put_object(Bucket=fresh_bucket, Key=f"bronze/{relative}", Body=bronze_fixture.parquet_bytes(table))
    # A root with nothing under it yet, e.g. a source that has not ingested anything.
    empty_root = f"s3://{fresh_bucket}/not-yet"

    build = build_warehouse([root, empty_root], tmp_path / "warehouse.duckdb", monkeypatch)

    assert "AWS_ENDPOINT_URL_S3" in s3_env  # the endpoint reaches s3fs only through the environment
    assert build.result.success
    rows = build.query("select order_date, order_count, revenue, customer_count from fct_daily_revenue")
    assert {day: tuple(rest) for day, *rest in rows} == bronze_fixture.EXPECTED_DAILY_REVENUE
    assert build.query("select count(*), count(*) filter (where is_latest_version) from fct_document_versions") == [
        (5, 4)
    ]
