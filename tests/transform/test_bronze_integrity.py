"""Bronze integrity on the local S3 server: a committed data file deleted after SUCCESS is passed over by staging
(builds, incremental and full refresh, succeed throughout), reported by `make health`, found by the
`bronze_is_intact` check and landed again from its source — or, when the source is gone too, marked lost with a
dead letter. Every version stays in exactly one state."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from devtools.ticks import tick_sensor
from ingestion_project.failures.health import run_checks
from ingestion_project.failures.integrity import STALE_LEASES, bronze_is_intact, verify_bronze
from ingestion_project.ingestion.assets import raw_documents
from ingestion_project.ingestion.sensors import document_discovery_sensor
from ingestion_project.lib.ledger import is_balanced
from tests.failures.s3_support import wait_until
from tests.ingestion.test_raw_documents import run_batch
from tests.transform.conftest import snapshot_and_build

HEADER = "order_id,customer_id,order_date,status,amount,currency"
DOCUMENTS = {
    "in/a.csv": f"{HEADER}\nO-1,C1,2026-11-01,placed,1.50,USD\nO-2,C2,2026-11-01,placed,2.50,USD\n",
    "in/b.csv": f"{HEADER}\nO-3,C1,2026-11-02,placed,3.50,USD\nO-4,C2,2026-11-02,placed,4.50,USD\n",
}
CUSTOMERS = (
    "customer_id,name,email,country,signed_up_at\n"
    "C1,Ana,a@example.com,BR,2026-01-01\nC2,Li,l@example.com,IE,2026-01-02\n"
)
A_ORDERS, B_ORDERS = {"O-1", "O-2"}, {"O-3", "O-4"}
LEASE_SECONDS = 2


class Platform:
    """Two orders documents and their customers landed on the local S3 server, and the warehouse built over them."""

    def __init__(self, s3, landing, bronze_bucket, resources, instance, tmp_path, monkeypatch):
        self.s3, self.landing, self.bronze_bucket = s3, landing, bronze_bucket
        self.resources, self.instance = resources, instance
        self.book = resources["ledger"].ledger()
        self.path, self.monkeypatch = tmp_path / "warehouse.duckdb", monkeypatch

    def land(self) -> int:
        """One discovery tick and every run it requests; how many runs there were."""
        result = tick_sensor(document_discovery_sensor, self.instance, self.resources)
        requests = list(getattr(result, "run_requests", None) or [])
        for request in requests:
            assert run_batch(self.resources, self.instance, request).success
        return len(requests)

    def row(self, key: str) -> dict:
        [row] = [row for row in self.book.versions() if row["object_key"] == key]
        return row

    def build(self, *, full_refresh: bool = False):
        roots = [f"s3://{self.bronze_bucket}/bronze"]
        return snapshot_and_build(
            self.resources["ledger"], roots, self.path, self.monkeypatch, full_refresh=full_refresh
        )

    def orders_in(self, build) -> set[str]:
        staged = {order_id for (order_id,) in build.query("select order_id from stg_bronze__orders")}
        marts = {order_id for (order_id,) in build.query("select order_id from fct_orders")}
        assert staged == marts
        return staged

    def delete_data_file(self, key: str) -> None:
        self.s3.delete_object(Bucket=self.bronze_bucket, Key=f"bronze/{self.row(key)['bronze_data_key']}")

    def check(self) -> dg.AssetCheckEvaluation:
        """The `bronze_is_intact` check, run as the hourly checks job runs it."""
        job = dg.define_asset_job("integrity", selection=dg.AssetSelection.checks(bronze_is_intact))
        defs = dg.Definitions(
            assets=[raw_documents], asset_checks=[bronze_is_intact], jobs=[job], resources=self.resources
        )
        result = defs.resolve_job_def("integrity").execute_in_process(instance=self.instance)
        [evaluation] = result.get_asset_check_evaluations()
        return evaluation

    def health_line(self):
        checks = run_checks(ingestion=self.resources["ingestion"], ledger=self.resources["ledger"], sensors=False)
        [line] = [check for check in checks if check.name == "bronze integrity"]
        return line

    def assert_conserved(self) -> None:
        assert all(is_balanced(figures) for figures in self.book.conservation().values())


@pytest.fixture
def platform(s3_client, fresh_bucket, write_sources, resources_for, tmp_path, monkeypatch):
    bronze_bucket = f"bronze-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=bronze_bucket)
    for key, body in DOCUMENTS.items():
        s3_client.put_object(Bucket=fresh_bucket, Key=key, Body=body.encode())
    s3_client.put_object(Bucket=fresh_bucket, Key="customers/all.csv", Body=CUSTOMERS.encode())
    sources = [
        {"name": "orders", "type": "s3", "bucket": fresh_bucket, "prefix": "in/"},
        {"name": "customers", "type": "s3", "bucket": fresh_bucket, "prefix": "customers/"},
    ]
    resources = resources_for(write_sources(sources, bronze_bucket=bronze_bucket, lease_seconds=LEASE_SECONDS))
    with dg.DagsterInstance.ephemeral() as instance:
        platform = Platform(s3_client, fresh_bucket, bronze_bucket, resources, instance, tmp_path, monkeypatch)
        assert platform.land() == 2
        assert {row["status"] for row in platform.book.versions()} == {"SUCCESS"}
        yield platform
    s3_client.delete_bucket(Bucket=bronze_bucket)


def test_a_data_file_deleted_after_success_is_found_landed_again_and_every_build_succeeds(platform):
    lost = platform.row("in/a.csv")
    platform.delete_data_file("in/a.csv")  # before the first build

    # Staging passes over the missing file; incremental and full refresh builds succeed.
    assert platform.orders_in(platform.build()) == B_ORDERS
    assert platform.orders_in(platform.build(full_refresh=True)) == B_ORDERS
    # make health says so (and changes nothing).
    line = platform.health_line()
    assert not line.ok and lost["partition_key"] in line.detail and "is missing" in line.detail
    assert platform.row("in/a.csv")["status"] == "SUCCESS"

    evaluation = platform.check()
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["re_ingested"].value == [lost["partition_key"]]
    assert evaluation.metadata["lost"].value == []
    row = platform.row("in/a.csv")
    assert (row["status"], row["error_type"], row["requested_at"]) == ("DISCOVERED", "BronzeLost", None)
    platform.assert_conserved()

    # The sensor requests it again; it lands under a new attempt's names.
    assert platform.land() == 1
    row = platform.row("in/a.csv")
    assert row["status"] == "SUCCESS" and row["bronze_data_key"] != lost["bronze_data_key"]
    assert platform.orders_in(platform.build()) == A_ORDERS | B_ORDERS
    assert platform.orders_in(platform.build(full_refresh=True)) == A_ORDERS | B_ORDERS

    evaluation = platform.check()
    assert evaluation.passed and evaluation.metadata["intact"].value == 3
    assert all(row["bronze_verified_at"] is not None for row in platform.book.versions())
    assert platform.health_line().ok
    platform.assert_conserved()


def test_a_data_file_lost_with_its_source_is_dead_lettered_and_builds_succeed(platform):
    assert platform.orders_in(platform.build()) == A_ORDERS | B_ORDERS
    lost = platform.row("in/b.csv")
    platform.delete_data_file("in/b.csv")
    platform.s3.delete_object(Bucket=platform.landing, Key="in/b.csv")  # the source is gone too

    # A build after the loss, incremental and full refresh, succeeds; the full refresh no longer has b's rows.
    assert platform.orders_in(platform.build()) == A_ORDERS | B_ORDERS
    assert platform.orders_in(platform.build(full_refresh=True)) == A_ORDERS

    evaluation = platform.check()
    assert not evaluation.passed
    assert evaluation.metadata["lost"].value == [lost["partition_key"]]
    row = platform.row("in/b.csv")
    assert (row["status"], row["error_type"], row["error_class"]) == ("FAILED", "BronzeLost", "external")
    [letter] = platform.book.open_dead_letters()
    assert letter["object_key"] == "in/b.csv" and "cannot be landed again" in letter["error_message"]
    assert letter["stored_key"] == letter["dlq_key"]  # its JSON record is written
    platform.assert_conserved()
    assert platform.land() == 0  # nothing to request: the source no longer has it
    assert platform.orders_in(platform.build()) == A_ORDERS
    assert platform.check().passed  # the lost version is FAILED now, no longer a SUCCESS to verify


def test_an_altered_data_file_is_reported_with_its_checksum(platform):
    row = platform.row("in/a.csv")
    key = f"bronze/{row['bronze_data_key']}"
    platform.s3.put_object(Bucket=platform.bronze_bucket, Key=key, Body=b"x" * row["bronze_data_bytes"])

    report = verify_bronze(platform.book, platform.resources["ingestion"], repair=False)
    [finding] = report.findings
    assert finding.partition_key == row["partition_key"] and "sha256" in finding.problem
    assert (report.checked, report.intact, finding.action) == (3, 2, "reported")
    assert platform.row("in/a.csv")["status"] == "SUCCESS"  # reporting changes nothing


def test_the_check_verifies_a_bounded_number_of_versions_least_recently_verified_first(platform):
    first = verify_bronze(platform.book, platform.resources["ingestion"], limit=2)
    second = verify_bronze(platform.book, platform.resources["ingestion"], limit=2)
    assert (first.checked, second.checked) == (2, 2)
    verified = [row["bronze_verified_at"] for row in platform.book.versions()]
    assert all(at is not None for at in verified)  # the second pass began with the one the first left out


def test_files_of_a_lost_attempt_are_swept_once_no_live_run_can_own_them(platform):
    row = platform.row("in/a.csv")
    committed = f"bronze/{row['bronze_manifest_key']}"
    # What a worker that lost its lease and died before cleaning up leaves: a manifest and data of its attempt.
    orphans = [key.replace(key.rsplit(".", 2)[1], "0123456789abcdef") for key in (committed, committed)]
    orphans[1] = orphans[1].replace("bronze/documents/", "bronze/tables/", 1)
    for key in orphans:
        platform.s3.put_object(Bucket=platform.bronze_bucket, Key=key, Body=b"late")
    written_at = datetime.now(UTC)

    young = verify_bronze(platform.book, platform.resources["ingestion"])
    assert young.swept == 0 and young.intact == 3  # a live attempt may still be writing them
    wait_until(
        lambda: datetime.now(UTC) - written_at > timedelta(seconds=STALE_LEASES * LEASE_SECONDS + 1),
        30,
        "the orphans to be older than three leases",
    )
    old = verify_bronze(platform.book, platform.resources["ingestion"])
    assert old.swept == 2 and old.intact == 3
    present = {item["Key"] for item in platform.s3.list_objects_v2(Bucket=platform.bronze_bucket)["Contents"]}
    assert not present & set(orphans)
    assert {committed, f"bronze/{row['bronze_data_key']}"} <= present
