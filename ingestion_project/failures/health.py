"""`make health` (python -m ingestion_project.failures.health): is the platform healthy right now?

One line per check — each S3 source and the bronze bucket reachable, the ledger open and migrated, bronze intact
(a sample of SUCCESS versions' files against their recorded size and sha256), the warehouse readable and built, the
sensors ticking, the oldest document in flight not too old — then exit 0 when all are ok and 1 when any is not.
It reads the same environment as Dagster (sources file, AWS_*, ledger URL, warehouse path, DAGSTER_HOME).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ingestion_project.config import Settings, default_settings
from ingestion_project.core.resources import IngestionResource, LedgerResource, S3Resource
from ingestion_project.core.warehouse import warehouse_path

SENSORS = ("document_discovery_sensor", "warehouse_automation_sensor")
DEFAULT_MAX_IN_FLIGHT = timedelta(hours=1)
DEFAULT_MAX_TICK_AGE = timedelta(minutes=10)
# Versions whose bronze one `make health` verifies (the least recently verified): a probe, not a full scan.
HEALTH_BRONZE_SAMPLE = 20


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.name}: {self.detail}"


def _timed(name: str, probe: Callable[[], str]) -> Check:
    started = time.monotonic()
    try:
        detail = probe()
    except Exception as error:  # noqa: BLE001 - a failing probe is the check's result
        return Check(name, False, f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
    return Check(name, True, f"{detail} ({(time.monotonic() - started) * 1000:.0f} ms)")


def s3_checks(settings: Settings, client) -> Iterator[Check]:
    """Each S3 source's bucket and prefix can be listed; the bronze bucket too."""
    for source in settings.sources:
        if source.type != "s3":
            continue

        def probe(source=source) -> str:
            listed = client.list_objects_v2(Bucket=source.bucket, Prefix=source.prefix, MaxKeys=1)
            return (
                f"s3://{source.bucket}/{source.prefix} reachable ({listed.get('KeyCount', 0)} key(s) in a 1-key page)"
            )

        yield _timed(f"s3 source {source.name}", probe)
    if settings.bronze.s3:
        bucket = settings.bronze.s3.bucket

        def bronze() -> str:
            client.head_bucket(Bucket=bucket)
            return f"s3://{bucket} reachable"

        yield _timed("s3 bronze", bronze)


def ledger_checks(ledger: LedgerResource, max_in_flight: timedelta) -> Iterator[Check]:
    book_holder = {}

    def open_ledger() -> str:
        book = book_holder["book"] = ledger.ledger()  # opening it applies migrations
        counts = book.status_counts()
        return f"{book.engine.url.render_as_string(hide_password=True)} open, {sum(counts.values()):,} version(s)"

    check = _timed("ledger", open_ledger)
    yield check
    if not check.ok:
        return
    oldest = book_holder["book"].oldest_in_flight()
    if oldest is None:
        yield Check("oldest in flight", True, "nothing waiting")
        return
    waiting = datetime.now(UTC) - oldest["discovered_at"]
    yield Check(
        "oldest in flight",
        waiting <= max_in_flight,
        f"{oldest['partition_key']} {oldest['status']} for {str(waiting).split('.')[0]} (limit {max_in_flight})",
    )


def bronze_check(ingestion: IngestionResource, ledger: LedgerResource) -> Check:
    """A sample of SUCCESS versions' committed files exist with their recorded size and sha256 (report only: the
    `bronze_is_intact` check repairs, and advances the cursor)."""
    from ingestion_project.failures.integrity import verify_bronze

    report_holder = {}

    def probe() -> str:
        report = report_holder["report"] = verify_bronze(
            ledger.ledger(), ingestion, limit=HEALTH_BRONZE_SAMPLE, repair=False
        )
        if report.findings:
            raise RuntimeError(report.summary())
        return report.summary()

    return _timed("bronze integrity", probe)


def warehouse_check() -> Check:
    def probe() -> str:
        import duckdb  # here, not at import: the ingestion code location loads this module and never needs DuckDB

        path = warehouse_path()
        if path is None or not path.exists():
            raise FileNotFoundError(f"no warehouse at {path} (has the warehouse been built?)")
        with duckdb.connect(str(path), read_only=True) as con:
            [(built,)] = con.execute("select max(loaded_at) from main.stg_bronze__documents").fetchall()
        return f"{path} readable, last build read bronze at {built:%Y-%m-%d %H:%M} UTC" if built else f"{path} empty"

    return _timed("warehouse", probe)


def sensor_checks(max_tick_age: timedelta, instance=None) -> Iterator[Check]:
    """The sensor daemon's heartbeat is recent, and so is the newest tick of each sensor (from ``instance``, or
    the DAGSTER_HOME instance the daemon uses)."""
    import contextlib

    import dagster as dg
    from dagster._core.scheduler.instigation import InstigatorType

    if instance is None:
        try:
            instance = dg.DagsterInstance.get()
        except Exception as error:  # noqa: BLE001
            yield Check("sensors", False, f"no Dagster instance: {error}")
            return
        owned = instance
    else:
        owned = contextlib.nullcontext(instance)
    with owned:
        now = datetime.now(UTC)
        try:
            beat = instance.get_daemon_heartbeats().get("SENSOR")
            states = {
                state.instigator_name: state
                for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
            }
        except Exception as error:  # noqa: BLE001 - an instance without daemon or schedule storage
            yield Check("sensors", False, f"the instance keeps no sensor state: {error}")
            return
        if beat is None:
            yield Check(
                "sensor daemon", False, "no heartbeat on this instance (is `dagster dev` or the daemon running?)"
            )
        else:
            age = now - datetime.fromtimestamp(beat.timestamp, UTC)
            yield Check("sensor daemon", age <= max_tick_age, f"last heartbeat {str(age).split('.')[0]} ago")
        for name in SENSORS:
            state = states.get(name)
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1) if state else []
            if not ticks:
                yield Check(f"sensor {name}", False, "has not ticked on this instance")
                continue
            age = now - datetime.fromtimestamp(ticks[0].timestamp, UTC)
            yield Check(
                f"sensor {name}",
                age <= max_tick_age,
                f"last tick {str(age).split('.')[0]} ago, {ticks[0].status.value.lower()}",
            )


def run_checks(
    *,
    settings: Settings | None = None,
    ledger: LedgerResource | None = None,
    sensors: bool = True,
    warehouse: bool = True,
    max_in_flight: timedelta = DEFAULT_MAX_IN_FLIGHT,
    max_tick_age: timedelta = DEFAULT_MAX_TICK_AGE,
    instance=None,
    ingestion: IngestionResource | None = None,
) -> list[Check]:
    """The checks, in order. Bronze integrity needs the stores: it is checked with ``ingestion``, or with the
    environment's when neither ``settings`` nor ``ingestion`` is given (as `make health` runs)."""
    if ingestion is None and settings is None:
        ingestion = IngestionResource(s3=S3Resource(max_attempts=1))
    settings = settings or (ingestion.settings() if ingestion is not None else default_settings())
    checks = list(s3_checks(settings, S3Resource(max_attempts=1).get_client()))
    ledger = ledger or LedgerResource()
    checks += ledger_checks(ledger, max_in_flight)
    if ingestion is not None:
        checks.append(bronze_check(ingestion, ledger))
    if warehouse:
        checks.append(warehouse_check())
    if sensors:
        checks += sensor_checks(max_tick_age, instance)
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ingestion_project.failures.health", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--no-sensors", action="store_true", help="skip the sensor ticks (no daemon expected)")
    parser.add_argument(
        "--no-warehouse", action="store_true", help="skip the warehouse (where it is not mounted, e.g. ingestion pods)"
    )
    parser.add_argument("--max-in-flight-minutes", type=float, default=DEFAULT_MAX_IN_FLIGHT.total_seconds() / 60)
    args = parser.parse_args(argv)
    checks = run_checks(
        sensors=not args.no_sensors,
        warehouse=not args.no_warehouse,
        max_in_flight=timedelta(minutes=args.max_in_flight_minutes),
    )
    for check in checks:
        print(check.line())
    failed = [c.name for c in checks if not c.ok]
    print(f"{'unhealthy: ' + ', '.join(failed) if failed else 'healthy'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
