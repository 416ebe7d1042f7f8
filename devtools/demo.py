"""`make demo`: one full pass without the UI, then a summary.

A fresh local S3 server gets the sample documents; one tick of the discovery sensor, the ingestion runs it
requests, one evaluation of the warehouse's automation conditions and the build it requests all run in this
process against a throw-away Dagster instance, exactly as the daemon would run them. Exits non-zero if anything
unexpected happened: a good sample that failed, a broken one that did not, a failed dbt build or test, empty marts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
import warnings
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import boto3
import dagster as dg
import duckdb

from devtools.local_postgres import LocalPostgres
from devtools.local_s3 import LocalS3Server
from devtools.seed import DEFAULT_SAMPLES_DIR, seed
from devtools.shop_database import change_payments, create_payments, payment_count
from devtools.ticks import skip_message, tick_sensor
from ingestion_project.lib.ledger import END_FIGURES, Ledger, is_balanced
from ingestion_project.transform.automation import WAREHOUSE_SELECTION

WORK_DIR = Path(__file__).resolve().parents[1] / ".local" / "demo"
# The summary is the demo's output: run logs (a failed document's stack trace among them) stay in the instance,
# as in the UI, and only a run that could not run at all is printed.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


# Per instance, where the next evaluation of the warehouse's automation conditions starts.
_AUTOMATION_CURSORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass
class PassReport:
    """What one pass did: the runs it launched and how they ended."""

    requested: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    extractions: list[str] = field(default_factory=list)  # database extraction jobs run, and how they ended
    skip_reason: str | None = None
    warehouse_ran: bool = False
    warehouse_succeeded: bool = False
    checks: dict[str, bool] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # checks that failed at WARN severity: reported, not fatal


def run_pass(defs: dg.Definitions, instance: dg.DagsterInstance, dbt_log: TextIO | None = None) -> PassReport:
    """One discovery tick → its ingestion runs → one evaluation of the warehouse's automation conditions → the build
    it requests, in this process."""
    report = PassReport()
    found = tick_sensor(defs.resolve_sensor_def("document_discovery_sensor"), instance, defs.resources)
    if (skipped := skip_message(found)) is not None:
        report.skip_reason = skipped
    else:
        _ingest(defs, instance, found, report)
    if os.environ.get("SHOP_DATABASE_URL"):
        result = defs.resolve_job_def("extract_shop").execute_in_process(
            instance=instance, run_config=QUIET, raise_on_error=False
        )
        report.extractions.append(f"extract_shop: {'succeeded' if result.success else 'FAILED'}")
    # One evaluation of the warehouse's automation conditions, as warehouse_automation_sensor makes it, from where
    # the previous one on this instance left off (the sensor keeps that cursor in its ticks).
    evaluation = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, asset_selection=WAREHOUSE_SELECTION, cursor=_AUTOMATION_CURSORS.get(instance)
    )
    _AUTOMATION_CURSORS[instance] = evaluation.cursor
    requested = sorted(r.key for r in evaluation.results if isinstance(r.key, dg.AssetKey) and r.true_subset.size)
    print(f"Automation conditions requested {len(requested)} warehouse asset(s)")
    if requested:
        # dbt's console output goes to `dbt_log` (when given): the summary reports the build and its tests.
        with contextlib.redirect_stdout(dbt_log) if dbt_log else contextlib.nullcontext():
            result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
                instance=instance, asset_selection=requested, run_config=QUIET, raise_on_error=False
            )
        report.warehouse_ran = True
        report.warehouse_succeeded = result.success
        for check in result.get_asset_check_evaluations():
            name = f"{check.asset_key.to_user_string()}:{check.check_name}"
            if not check.passed and check.severity == dg.AssetCheckSeverity.WARN:
                report.warnings.append(name)
            else:
                report.checks[name] = check.passed
    return report


def _ingest(defs: dg.Definitions, instance: dg.DagsterInstance, found: dg.SensorResult, report: PassReport) -> None:
    """The ingestion runs one discovery tick requested, launched as the daemon would."""
    ingest = defs.resolve_job_def("ingest_documents")
    for request in found.run_requests:
        report.requested.append(request.run_key)
        result = ingest.execute_in_process(
            instance=instance,
            tags=request.tags,
            run_config={**request.run_config, **QUIET},
            raise_on_error=False,
        )
        if not result.success:
            failure = result.failure_data_for_node("raw_documents")
            report.failures[request.run_key] = (
                failure.user_failure_data.description if failure and failure.user_failure_data else "run failed"
            )


def _table(rows: list[tuple], headers: tuple[str, ...]) -> str:
    cells = [tuple("" if v is None else str(v) for v in row) for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(
        [line.format(*headers), line.format(*("-" * w for w in widths)), *(line.format(*r) for r in cells)]
    )


def summarize_failures(book: Ledger) -> list[str]:
    """Print the dead-letter queue and the conservation figures; return what is unexpected."""
    problems = []
    letters = [
        (r["state"], r["dlq_key"], f"{r['error_type']}: {r['error_message']}"[:80]) for r in book.dead_letter_rows()
    ]
    print("\nDead-letter queue\n" + _table(letters, ("state", "record", "reason")))
    failed = {r["object_key"] for r in book.versions() if r["status"] == "FAILED"}
    lettered = {r["object_key"] for r in book.dead_letter_rows() if r["state"] == "open"}
    if failed != lettered:
        problems.append(f"failed documents {sorted(failed)} but open dead letters for {sorted(lettered)}")
    rows = []
    for source, f in sorted(book.conservation().items()):
        rows.append((source, f["discovered"], *(f[name] for name in END_FIGURES), f["in_flight"], is_balanced(f)))
        if not is_balanced(f):
            problems.append(f"ledger of source {source} does not balance: {f}")
    headers = ("source", "discovered", *END_FIGURES, "in flight", "balanced")
    print("\nConservation (discovered = every terminal state + in flight)\n" + _table(rows, headers))
    return problems


def summarize(report: PassReport, ledger_rows: list[dict], warehouse: Path) -> list[str]:
    """Print the summary and return the list of unexpected things (empty when all went as expected)."""
    problems = []
    docs = [
        (
            r["source"],
            r["object_key"],
            r["status"],
            r["records_ingested"],
            f"{r['error_type']}: {r['error_message']}"[:100] if r["error_type"] else "",
        )
        for r in ledger_rows
    ]
    print("\nDocuments\n" + _table(docs, ("source", "key", "status", "records", "error")))
    for _, key, status, _, error in docs:
        broken = "broken" in key
        if broken and status != "FAILED":
            problems.append(f"{key} is broken but ended {status}")
        if not broken and status != "SUCCESS":
            problems.append(f"{key} should have succeeded but ended {status}: {error}")
    if not ledger_rows:
        problems.append(f"nothing was discovered: {report.skip_reason}")
    if not report.warehouse_ran:
        problems.append("the warehouse build was not requested after documents landed")
    elif not report.warehouse_succeeded:
        problems.append("the warehouse build failed")
    failed_checks = sorted(name for name, passed in report.checks.items() if not passed)
    print(
        f"\ndbt tests as asset checks: {len(report.checks) - len(failed_checks)} passed, {len(failed_checks)} failed, "
        f"{len(report.warnings)} warned"
    )
    for name in sorted(report.warnings):
        print(f"  warning: {name}")
    problems += [f"dbt test failed: {name}" for name in failed_checks]
    if warehouse.exists():
        with duckdb.connect(str(warehouse), read_only=True) as con:
            for title, query in [
                ("Daily ingestion", "select * from main.fct_daily_ingestion order by 1, 2"),
                ("Daily revenue", "select * from main.fct_daily_revenue order by 1"),
            ]:
                result = con.execute(query)
                rows = result.fetchall()
                print(f"\n{title}\n" + _table(rows, tuple(c[0] for c in result.description)))
                if not rows:
                    problems.append(f"{title.lower()} mart is empty")
    print(f"\nWarehouse: {warehouse} (dbt's output: {WORK_DIR / 'dbt.log'})")
    return problems


def summarize_contracts_and_databases(warehouse: Path, book: Ledger, source_rows: int | None) -> list[str]:
    """Schema drift and what the orders contract did; the database extractions and their watermark."""
    problems = []
    with duckdb.connect(str(warehouse), read_only=True) as con:
        result = con.execute(
            "select source, object_key, contract_mode, cast(columns_added as varchar) as added, "
            "cast(columns_retyped as varchar) as retyped, rescued_rows "
            "from main.fct_schema_changes where not is_first_schema order by schema_version_id"
        )
        changes = result.fetchall()
        print(
            "\nSchema drift and contracts (fct_schema_changes)\n"
            + _table(changes, tuple(c[0] for c in result.description))
        )
        rescued = con.execute(
            "select order_id, amount, rescued_data from main.stg_bronze__orders where rescued_data is not null "
            "order by 1"
        ).fetchall()
        print(
            "\nRescued by the orders contract (stg_bronze__orders)\n"
            + _table(rescued, ("order_id", "amount", "rescued_data"))
        )
        if not any("12.50 EUR" in (r[2] or "") for r in rescued):
            problems.append("the '12.50 EUR' amount was not rescued")
        staged = con.execute(
            "select count(*), count(*) filter (where status = 'refunded') from main.stg_shop__payments"
        ).fetchall()
    extractions = [
        (r["etag"], r["status"], r["records_ingested"], r["error_message"] or "") for r in book.versions("shop")
    ]
    print(
        "\nDatabase extractions (shop.public.payments)\n"
        + _table(extractions, ("extraction", "status", "rows", "error"))
    )
    watermark = book.watermark("shop", "public.payments")
    print(f"Watermark: {watermark.column_name} = {watermark.value}" if watermark else "Watermark: none")
    if source_rows is not None:
        print(
            f"Payments in the source table: {source_rows}; "
            f"in stg_shop__payments: {staged[0][0]} ({staged[0][1]} refunded)"
        )
        if staged[0][0] != source_rows:
            problems.append(f"stg_shop__payments has {staged[0][0]} payments, the source table {source_rows}")
        if [r[1] for r in extractions] != ["SUCCESS", "SUCCESS"]:
            problems.append(f"expected two successful extractions of payments, got {extractions}")
    return problems


def main() -> int:
    warnings.filterwarnings("ignore", category=UserWarning, module="dagster")
    logging.getLogger("dagster").setLevel(logging.WARNING)  # the sensors' per-tick INFO lines
    shutil.rmtree(WORK_DIR, ignore_errors=True)
    WORK_DIR.mkdir(parents=True)
    warehouse = WORK_DIR / "warehouse.duckdb"
    os.environ.update(
        INGESTION_LEDGER_URL=f"sqlite:///{WORK_DIR / 'ledger.sqlite'}",
        INGESTION_WAREHOUSE_PATH=str(warehouse),
        DO_NOT_TRACK="1",
    )
    # The postgres user runs the server and cannot enter private directories: its state goes under /tmp.
    pg_state = tempfile.mkdtemp(prefix="ingestion-demo-pg-")
    with LocalS3Server(WORK_DIR / "s3") as server, LocalPostgres(pg_state) as postgres:
        os.environ.update(server.env())
        uploaded = seed(boto3.client("s3"), DEFAULT_SAMPLES_DIR)
        print(f"Local S3 at {server.endpoint_url}: uploaded {len(uploaded)} sample documents")
        shop_url = postgres.create_database("shop")
        os.environ["SHOP_DATABASE_URL"] = shop_url
        print(f"Local PostgreSQL on port {postgres.port}: shop.payments has {create_payments(shop_url)} rows")
        from devtools.workspace import workspace_definitions

        defs = workspace_definitions()
        from ingestion_project.core.resources import LedgerResource

        home = WORK_DIR / "dagster"
        home.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        dbt_log = (WORK_DIR / "dbt.log").open("a")
        with dg.DagsterInstance.local_temp(tempdir=str(home)) as instance, dbt_log:
            report = run_pass(defs, instance, dbt_log)
            # New payments and a refund after the watermark: the second extraction reads just those.
            change_payments(shop_url)
            second = run_pass(defs, instance, dbt_log)
            report.extractions += second.extractions
            report.warehouse_succeeded = report.warehouse_succeeded and second.warehouse_succeeded
        book = LedgerResource().ledger()
        problems = summarize(report, [r for r in book.versions() if r["source"] != "shop"], warehouse)
        problems += summarize_contracts_and_databases(warehouse, book, payment_count(shop_url))
        problems += summarize_failures(book)
    shutil.rmtree(pg_state, ignore_errors=True)
    if problems:
        print("\nUnexpected:\n" + "\n".join(f"- {p}" for p in problems))
        return 1
    print("\nDemo pass complete: everything went as expected.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
