"""Incremental warehouse builds: each reads only what is new, and ends with the marts a full refresh gives."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from tests.transform import bronze_fixture
from tests.transform.conftest import WarehouseBuild, build_warehouse

# Every table of the warehouse built from bronze; `loaded_at` (when a build read a row) is the only column that may
# differ between an incremental history and one full refresh.
TABLES = (
    "stg_bronze__documents",
    "stg_bronze__orders",
    "stg_bronze__customers",
    "stg_bronze__text_chunks",
    "fct_document_versions",
    "fct_orders",
    "dim_customers",
    "fct_daily_revenue",
    "fct_daily_ingestion",
)


def fixture_versions() -> dict[str, bronze_fixture.Version]:
    return {version.etag: version for version in bronze_fixture.versions()}


def later_versions() -> list[bronze_fixture.Version]:
    """A third version of the January orders (drops ORD-1001, adds ORD-1005) and an emptied February file."""
    versions = fixture_versions()
    uploaded = datetime(2026, 2, 3, 9, 0, tzinfo=UTC)
    january = dataclasses.replace(
        versions["e1b"],
        etag="e1d",
        ingested_at=uploaded,
        last_modified_at=uploaded,
        discovery_seq=7,
        data=bronze_fixture.orders_csv(
            [
                ("ORD-1002", "C002", date(2026, 1, 5), "returned", 50.50),
                ("ORD-1005", "C001", date(2026, 1, 7), "delivered", 80.00),
            ]
        ),
    )
    february = dataclasses.replace(
        versions["f1-2"],
        etag="f2-0",
        ingested_at=uploaded,
        last_modified_at=uploaded,
        discovery_seq=8,
        data=versions["f1-2"].data.slice(0, 0),
    )
    return [january, february]


def write(root: Path, text_root: Path, versions: list[bronze_fixture.Version]) -> list[str]:
    """Write `versions` as ingestion would (data first, then the manifest of committed ones); return the paths."""
    written = []
    for version in versions:
        base = text_root if version.is_text else root
        tables = {version.data_path: version.data_with_lineage()}
        if version.committed:
            tables[version.manifest_path] = version.manifest(str(base))
        bronze_fixture.write_local(tables, base)
        written += [str(base / relative) for relative in tables]
    return written


def rows(build: WarehouseBuild, table: str) -> list[tuple]:
    columns = [
        name
        for (name,) in build.query(
            f"select column_name from information_schema.columns where table_name = '{table}' order by ordinal_position"
        )
        if name != "loaded_at"
    ]
    return build.query(f"select {', '.join(columns)} from {table} order by all")


@dataclasses.dataclass(frozen=True)
class History:
    builds: dict[str, WarehouseBuild]  # each with a copy of the warehouse as it was right after that build


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    """Three incremental builds as versions arrive out of order, then one full refresh over the same bronze."""
    base = tmp_path_factory.mktemp("incremental")
    root, text_root = base / "bronze", base / "text"
    roots = [str(root), str(text_root)]
    versions = fixture_versions()
    builds = {}

    def incremental(name: str) -> None:
        build = build_warehouse(roots, base / "incremental.duckdb", monkeypatch)
        builds[name] = dataclasses.replace(build, path=Path(shutil.copy(build.path, base / f"after {name}.duckdb")))

    with pytest.MonkeyPatch.context() as monkeypatch:
        # 1. The corrected January version and the other documents land first.
        first = write(root, text_root, [versions["c1"], versions["e1b"], versions["f1-2"]])
        incremental("first")
        # 2. The older January version finishes late, with a text document and an uncommitted data file. The data
        # files of the first build are moved away (their manifests stay): a build that read them again would fail.
        hidden = {path: Path(path).read_bytes() for path in first if "/documents/" not in path}
        for path in hidden:
            Path(path).unlink()
        write(root, text_root, [versions["e1a"], versions["t1"], versions["e1c-orphan"]])
        incremental("second")
        for path, content in hidden.items():
            Path(path).write_bytes(content)
        # 3. A newer January version and an emptied February file.
        write(root, text_root, later_versions())
        incremental("third")
        incremental("nothing new")
        builds["full refresh"] = build_warehouse(roots, base / "full.duckdb", monkeypatch, full_refresh=True)
    return History(builds)


def test_every_build_succeeds_with_passing_checks(history: History):
    for name, build in history.builds.items():
        assert build.result.success, name
        failed = [e.check_name for e in build.result.get_asset_check_evaluations() if not e.passed]
        assert not failed, (name, failed)


def test_a_build_reads_only_the_files_no_earlier_build_read(history: History):
    # The second build succeeded with the first build's files gone, and stamped only the new versions.
    stamps = dict(history.builds["second"].query("select etag, loaded_at from stg_bronze__documents"))
    assert stamps["e1b"] < stamps["e1a"]
    assert stamps["e1b"] == stamps["c1"] == stamps["f1-2"]
    assert stamps["e1a"] == stamps["t1"]


def test_incremental_builds_give_the_marts_of_a_full_refresh(history: History):
    for table in TABLES:
        assert rows(history.builds["nothing new"], table) == rows(history.builds["full refresh"], table), table


def test_a_late_older_version_does_not_replace_the_current_one(history: History):
    january = "select order_id, etag from fct_orders where object_key = 'orders/2026-01.csv'"
    orders = dict(history.builds["second"].query(january))
    assert orders == {"ORD-1001": "e1b", "ORD-1002": "e1b", "ORD-1004": "e1b"}


def test_orders_leave_the_mart_when_their_document_drops_them(history: History):
    orders = dict(history.builds["third"].query("select order_id, etag from fct_orders"))
    # ORD-1001 and ORD-1004 are not in e1d; the February file is now empty.
    assert orders == {"ORD-1002": "e1d", "ORD-1005": "e1d"}
    assert history.builds["third"].query("select count(*) from fct_orders where etag is null") == [(0,)]


def test_a_build_with_nothing_new_changes_nothing(history: History):
    for table in TABLES:
        assert rows(history.builds["nothing new"], table) == rows(history.builds["third"], table), table
