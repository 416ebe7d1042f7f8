"""`make bench`: what the platform costs per document, next to a plain Python loop doing the same useful work.

1. Plain loop: for each of N small CSV objects on a local S3 server, HEAD, GET, sha256, parse with pyarrow.csv,
   write Parquet to bytes, PUT to a bronze bucket — one thread, boto3 + pyarrow only. Runs before Dagster starts,
   so the two never compete for cores.
2. Real path: `dagster dev` (webserver + daemon) on a throw-away DAGSTER_HOME, ledger and warehouse, with one S3
   source `bench`. Timed from the moment N fresh documents are uploaded until the ledger holds all N versions in a
   terminal status. The dbt build the warehouse sensor may launch afterwards is not part of the measurement.

Then, from the Dagster instance: the ingestion runs launched, their durations, the per-document cost inside the
largest run, and how long each run spends before its first document. A benchmark prints, it does not assert: the
exit code is non-zero only when the real path timed out or a version ended FAILED or QUARANTINED.

    BENCH_DOCUMENTS=50 .venv/bin/python scripts/bench.py     # or --documents 50
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import dagster as dg
import pyarrow.csv as pv
import pyarrow.parquet as pq
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # devtools/ sits beside the package, not installed

from devtools.local_s3 import CONFLICTING_ENV_VARS, LocalS3Server  # noqa: E402
from ingestion_project.lib.ledger import TERMINAL, Ledger, create_ledger_engine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LOCATION, SENSOR = "ingestion_project", "document_discovery_sensor"
# The plain loop has its own copy of the documents: the real path's are uploaded only once dagster dev is up.
PLAIN_BUCKET, PLAIN_BRONZE = "bench-plain", "bench-plain-bronze"
LANDING, BRONZE, PREFIX = "bench-landing", "bench-bronze", "orders/"
ROWS = 150  # ~70 bytes a row: ~10 KB a document
POLL_SECONDS = 0.5
SENSOR_TICK_QUERY = """query ($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) {
  __typename ... on Sensor { sensorState { ticks(limit: 1) { status } } } } }"""


def document(index: int) -> bytes:
    """One orders CSV; the index varies every row, so every document has its own bytes, sha256 and ETag."""
    statuses = ("placed", "shipped", "delivered", "returned")
    lines = ["order_id,customer_id,order_date,status,amount,currency"]
    for row in range(ROWS):
        n = index * ROWS + row
        lines.append(
            f"ord-{index:07d}-{row:03d},cust-{n % 9973:05d},2026-11-{1 + n % 28:02d}T{n % 24:02d}:15:00Z,"
            f"{statuses[n % 4]},{(n * 37) % 100_000 / 100:.2f},{'EUR' if n % 3 else 'USD'}"
        )
    return ("\n".join(lines) + "\n").encode()


def s3_client(env: dict[str, str]):
    # Enough pooled connections for the upload threads; endpoint and keys exactly as the platform gets them.
    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL_S3"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        config=Config(max_pool_connections=16),
    )


def upload(client, bucket: str, count: int) -> list[str]:
    keys = [f"{PREFIX}{i:06d}.csv" for i in range(count)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: client.put_object(Bucket=bucket, Key=keys[i], Body=document(i)), range(count)))
    return keys


def plain_loop(client, keys: list[str]) -> float:
    """Seconds for the useful work per document, nothing else: no ledger, no events, no orchestration."""
    started = time.perf_counter()
    for key in keys:
        etag = client.head_object(Bucket=PLAIN_BUCKET, Key=key)["ETag"]
        body = client.get_object(Bucket=PLAIN_BUCKET, Key=key, IfMatch=etag)["Body"].read()
        digest = hashlib.sha256(body).hexdigest()
        parquet = io.BytesIO()
        pq.write_table(pv.read_csv(io.BytesIO(body)), parquet)
        client.put_object(Bucket=PLAIN_BRONZE, Key=f"bronze/{digest}.parquet", Body=parquet.getvalue())
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_dagster(work: Path, s3_env: dict[str, str], port: int) -> subprocess.Popen:
    home = work / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    sources = work / "sources.yaml"
    sources.write_text(
        f"bronze:\n  s3: {{bucket: {BRONZE}, prefix: bronze}}\nsources:\n"
        f"  - {{name: bench, type: s3, bucket: {LANDING}, prefix: {PREFIX}, include: ['*.csv']}}\n"
    )
    env = {name: value for name, value in os.environ.items() if name not in CONFLICTING_ENV_VARS}
    env.update(
        s3_env,
        DAGSTER_HOME=str(home),
        INGESTION_SOURCES_FILE=str(sources),
        INGESTION_LEDGER_URL=ledger_url(work),
        INGESTION_WAREHOUSE_PATH=str(work / "warehouse.duckdb"),
        DO_NOT_TRACK="1",
    )
    cmd = [str(Path(sys.executable).parent / "dagster"), "dev", "-w", "workspace.yaml"]
    with open(work / "dagster-dev.log", "wb") as log:
        # Its own process group: stopping it reaches the webserver, daemon, code servers and run workers.
        return subprocess.Popen(
            [*cmd, "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_dagster(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """SIGTERM our process group, wait up to `grace` seconds for all of it, then SIGKILL what is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            proc.poll()  # reaps our own child, so a zombie does not keep the group alive
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
    proc.wait(timeout=5)


def ledger_url(work: Path) -> str:
    return f"sqlite:///{work / 'ledger.sqlite'}"


def graphql(port: int, query: str, variables: dict) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["data"]


def wait_ready(proc: subprocess.Popen, port: int, timeout: float) -> None:
    """Until the webserver answers and the daemon has ticked the discovery sensor once (code location loaded)."""
    selector = {"repositoryLocationName": LOCATION, "repositoryName": "__repository__", "sensorName": SENSOR}
    for _ in range(int(timeout / POLL_SECONDS)):
        if proc.poll() is not None:
            raise RuntimeError(f"dagster dev exited with {proc.returncode} during startup")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5).close()
            found = graphql(port, SENSOR_TICK_QUERY, {"selector": selector})["sensorOrError"]
            if found["__typename"] == "Sensor" and found["sensorState"]["ticks"]:
                return
        except OSError:
            pass  # not listening yet
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"dagster dev was not ready within {timeout:.0f}s")


def wait_terminal(proc: subprocess.Popen, book: Ledger, count: int, timeout: float) -> dict[str, int] | None:
    """The bench source's {status: versions} once all `count` are terminal; None on timeout."""
    for _ in range(int(timeout / POLL_SECONDS)):
        statuses = {status: n for (source, status), n in book.status_counts().items() if source == "bench"}
        if sum(n for status, n in statuses.items() if status in TERMINAL) >= count:
            return statuses
        if proc.poll() is not None:
            raise RuntimeError(f"dagster dev exited with {proc.returncode} while documents were in flight")
        time.sleep(POLL_SECONDS)
    return None


def run_figures(home: Path, timeout: float = 60.0) -> list[dict]:
    """Per ingestion run: duration, documents materialized, and run start → first materialization."""
    materialized, started = dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.RUN_START
    with dg.DagsterInstance.from_config(str(home)) as instance:
        # The ledger turns terminal before a run has written its last events: give the runs time to end.
        for _ in range(int(timeout / POLL_SECONDS)):
            records = instance.get_run_records(dg.RunsFilter(job_name="ingest_documents"), ascending=True)
            if all(record.dagster_run.is_finished for record in records):
                break
            time.sleep(POLL_SECONDS)
        figures = []
        for record in records:
            logs = instance.all_logs(record.dagster_run.run_id, of_type={materialized, started})
            start = min((e.timestamp for e in logs if e.dagster_event_type == started), default=None)
            docs = sorted(
                e.timestamp
                for e in logs
                if e.dagster_event_type == materialized and e.asset_materialization.asset_key.path == ["raw_documents"]
            )
            figures.append(
                {
                    "created": record.create_timestamp.timestamp(),
                    "launch": (record.start_time or time.time()) - record.create_timestamp.timestamp(),
                    "duration": (record.end_time or time.time()) - (record.start_time or time.time()),
                    "documents": len(docs),
                    "before_first": docs[0] - start if docs and start else None,
                    "status": record.dagster_run.status.value,
                }
            )
        return figures


def seconds(values: list[float]) -> str:
    if len(values) <= 6:
        return ", ".join(f"{v:.1f} s" for v in values)
    return f"min {min(values):.1f} s, median {statistics.median(values):.1f} s, max {max(values):.1f} s"


def report(count: int, plain: float, real: float, uploaded_at: float, statuses: dict, runs: list[dict]) -> None:
    plain_rate, real_rate = count / plain, count / real
    largest = max(runs, key=lambda r: r["documents"], default=None)
    before = [r["before_first"] for r in runs if r["before_first"] is not None]
    lines = [
        ("machine", f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, Dagster {dg.__version__}"),
        ("documents", f"{count} CSV × {len(document(0)) / 1000:.1f} KB ({ROWS} rows)"),
        ("plain loop", f"{plain_rate:.1f} docs/s ({plain:.1f} s)"),
        ("real path (dagster dev)", f"{real_rate:.2f} docs/s ({real:.1f} s from upload to every version terminal)"),
        ("real / plain", f"1/{plain_rate / real_rate:.1f} ({real_rate / plain_rate:.3f})"),
        ("ledger", ", ".join(f"{status} {n}" for status, n in sorted(statuses.items()))),
        ("ingestion runs launched", f"{len(runs)}: {seconds([r['duration'] for r in runs])}"),
        ("run statuses", ", ".join(f"{s} {n}" for s, n in sorted(Counter(r["status"] for r in runs).items()))),
        ("docs per run", ", ".join(str(r["documents"]) for r in runs[:12]) + (" …" if len(runs) > 12 else "")),
    ]
    if runs:
        lines.append(("first run created", f"{runs[0]['created'] - uploaded_at:.1f} s after the upload"))
        launch = [r["launch"] for r in runs]
        lines.append(("run created → started", f"median {statistics.median(launch):.1f} s, max {max(launch):.1f} s"))
    if largest and largest["documents"]:
        per_doc = f"{largest['duration'] / largest['documents'] * 1000:.0f} ms"
        figures = f"{largest['duration']:.1f} s / {largest['documents']} docs; plain loop {plain / count * 1000:.1f} ms"
        lines.append(("per doc, largest run", f"{per_doc} ({figures})"))
    if before:
        lines.append(("before first document", f"median {statistics.median(before):.1f} s, max {max(before):.1f} s"))
    width = max(len(name) for name, _ in lines)
    print("\nIngestion benchmark\n" + "\n".join(f"  {name:<{width}}  {value}" for name, value in lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=int(os.environ.get("BENCH_DOCUMENTS", "2000")))
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds the real path may take")
    args = parser.parse_args(argv)
    # SIGTERM becomes SystemExit, so the finally blocks below still stop dagster dev and the S3 server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="ingestion-bench-"))
    proc, code = None, 1
    try:
        with LocalS3Server(work / "s3", buckets=(PLAIN_BUCKET, PLAIN_BRONZE, LANDING, BRONZE)) as server:
            client = s3_client(server.env())
            print(f"Plain loop over {args.documents} documents…", flush=True)
            plain = plain_loop(client, upload(client, PLAIN_BUCKET, args.documents))
            book = Ledger(create_ledger_engine(ledger_url(work)))  # created here, so no race with dagster's first use
            port = free_port()
            print(f"Starting dagster dev on 127.0.0.1:{port} (log: {work / 'dagster-dev.log'})…", flush=True)
            try:
                proc = start_dagster(work, server.env(), port)
                wait_ready(proc, port, timeout=300)
                upload(client, LANDING, args.documents)
                uploaded_at = time.time()
                print(f"Uploaded {args.documents} documents; waiting for the ledger…", flush=True)
                statuses = wait_terminal(proc, book, args.documents, args.timeout)
                real = time.time() - uploaded_at
                if statuses is None:
                    print(f"error: not done within {args.timeout:.0f} s; logs and ledger in {work}", file=sys.stderr)
                    return 1
                report(args.documents, plain, real, uploaded_at, statuses, run_figures(work / "dagster_home"))
            finally:
                if proc is not None:
                    stop_dagster(proc)
        broken = {status: statuses.get(status, 0) for status in ("FAILED", "QUARANTINED")}
        code = 1 if any(broken.values()) else 0
        if code:
            print(f"error: versions ended {broken}; see the log and ledger in {work}", file=sys.stderr)
        return code
    except RuntimeError as exc:
        print(f"error: {exc}; see {work / 'dagster-dev.log'}", file=sys.stderr)
        return 1
    finally:
        # Keep the logs and ledger when something broke; a clean run leaves nothing behind.
        if code == 0:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
