"""How long a new run process takes before it can work: loading its code location, and reaching its first document.

Each ingestion run is a process of its own that loads its job's code location. This prints, as the median of a few
fresh processes each:

1. Load: from process start until the code location's definitions are imported and the job resolved, the way a run
   worker loads them (the module imported with importlib, `Definitions.resolve_job_def`). For the ingestion
   location, the warehouse location, and one location holding both (as before the split).
2. First document: a real run of `ingest_documents` (`dagster job execute`, one CSV from a local-folder source,
   a throw-away DAGSTER_HOME and ledger), from process start to the run's first materialization, read from the run's
   event log; for the ingestion location and for one location holding both. `dagster job execute` also creates the
   run, which a run worker (`dagster api execute_run`) does not: the figure is a little above a worker's.

Both with the bytecode `make install` compiles, and without any: PYTHONDONTWRITEBYTECODE plus an empty
PYTHONPYCACHEPREFIX, so every module is compiled from source (the standard library's too, which a venv without
bytecode would still have: a slight overstatement). A benchmark prints, it does not assert.

    .venv/bin/python scripts/bench_import.py                # --repeats 5 --cold-repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

REPO = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 2.0
INGESTION_JOB = "ingest_documents"
# What each variant's process evaluates to get its Definitions, and the job it resolves.
LOCATIONS = {
    "ingestion location": ("importlib.import_module('ingestion_project.definitions').defs()", INGESTION_JOB),
    "warehouse location": (
        "importlib.import_module('ingestion_project.warehouse_definitions').defs()",
        "__ASSET_JOB",  # what the automation sensor's runs execute
    ),
    "both in one location (before the split)": (
        "importlib.import_module('devtools.workspace').workspace_definitions()",
        INGESTION_JOB,
    ),
}
# A module file that is the single location of before the split, for `dagster job execute -f`.
COMBINED_LOCATION = "from devtools.workspace import workspace_definitions\n\ndefs = workspace_definitions()\n"
LOAD_PROBE = """
import importlib, importlib.util, json, os, sys, time
defs = {expression}
defs.resolve_job_def({job!r})
ready = time.time()

def has_current_bytecode(module):
    source, cached = getattr(module, "__file__", None), getattr(module, "__cached__", None)
    if not source or not source.endswith(".py") or not cached:
        return None
    try:
        with open(importlib.util.cache_from_source(source), "rb") as file:
            header = file.read(16)
    except OSError:
        return False
    hash_based = int.from_bytes(header[4:8], "little") != 0
    return hash_based or int.from_bytes(header[8:12], "little") == int(os.stat(source).st_mtime) & 0xFFFFFFFF

checked = [has_current_bytecode(module) for module in list(sys.modules.values())]
print(json.dumps({{"ready": ready, "modules": sum(c is not None for c in checked), "compiled": checked.count(False)}}))
"""


def bytecode_env(cached: bool, prefix_root: Path) -> dict[str, str]:
    """The environment of a run process: this machine's PYTHONDONTWRITEBYTECODE, with or without usable bytecode."""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPYCACHEPREFIX"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if not cached:
        env["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="pycache-", dir=prefix_root)
    return env


def time_load(expression: str, job: str, env: dict[str, str]) -> tuple[float, dict]:
    """Seconds from starting a fresh interpreter until its definitions are loaded, and what it reported."""
    code = LOAD_PROBE.format(expression=expression, job=job)
    started = time.time()
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True, timeout=300
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    return report["ready"] - started, report


class LocalRuns:
    """Real runs of ingest_documents on one local-folder source, each on a new CSV, in a throw-away instance."""

    def __init__(self, work: Path):
        self.work, self.count = work, 0
        (work / "home").mkdir(parents=True)
        (work / "home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        (work / "landing").mkdir()
        (work / "sources.yaml").write_text(
            "bronze:\n  local_dir: bronze\nsources:\n  - {name: bench, type: local, path: landing}\n"
        )
        (work / "combined_location.py").write_text(COMBINED_LOCATION)
        self.env = {
            "DAGSTER_HOME": str(work / "home"),
            "INGESTION_SOURCES_FILE": str(work / "sources.yaml"),
            "INGESTION_LEDGER_URL": f"sqlite:///{work / 'ledger.db'}",
            "INGESTION_WAREHOUSE_PATH": str(work / "warehouse.duckdb"),
            "DO_NOT_TRACK": "1",
        }
        # The instance's storage is created here, so that no measured run pays for its first migration.
        self.instance = dg.DagsterInstance.from_config(str(work / "home"))

    def run(self, target: list[str], env: dict[str, str]) -> dict[str, float]:
        """One run; seconds from process start to the run's start, its step's start and its first document."""
        self.count += 1
        name = f"doc-{self.count:03d}.csv"
        (self.work / "landing" / name).write_text(f"order_id,amount\nord-{self.count},1.50\nord-x,2.50\n")
        partition = f"bench:/{name}"
        self.instance.add_dynamic_partitions("documents", [partition])
        cmd = [str(Path(sys.executable).parent / "dagster"), "job", "execute", *target, "-j", INGESTION_JOB]
        started = time.time()
        subprocess.run(
            [*cmd, "--tags", json.dumps({"dagster/partition": partition})],
            cwd=REPO,
            env={**env, **self.env},
            capture_output=True,
            check=True,
            timeout=300,
        )
        (run,) = self.instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": partition}))
        first: dict[str, float] = {}
        for record in self.instance.get_records_for_run(run.run_id).records:
            entry = record.event_log_entry
            if entry.dagster_event_type is not None:
                first.setdefault(entry.dagster_event_type.name, entry.timestamp)
        return {
            "run start": first["RUN_START"] - started,
            "step start": first["STEP_START"] - started,
            "first document": first["ASSET_MATERIALIZATION"] - started,
        }


def median_of(samples: list[float]) -> str:
    return f"{statistics.median(samples):5.2f} s  (of {', '.join(f'{s:.2f}' for s in samples)})"


def verdict(seconds: float) -> str:
    return f"{'within' if seconds < TARGET_SECONDS else 'over'} the < {TARGET_SECONDS:.0f} s target"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="processes per figure with bytecode")
    parser.add_argument("--cold-repeats", type=int, default=3, help="processes per figure without bytecode")
    parser.add_argument("--no-runs", action="store_true", help="only the load figures, no real runs")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        work = Path(tmp)
        modes = {"with bytecode": (True, args.repeats), "without bytecode": (False, args.cold_repeats)}
        print("Loading a code location in a fresh process (start → definitions loaded, job resolved):")
        for mode, (cached, repeats) in modes.items():
            for name, (expression, job) in LOCATIONS.items():
                samples, report = [], {}
                for _ in range(repeats):
                    seconds, report = time_load(expression, job, bytecode_env(cached, work))
                    samples.append(seconds)
                figure = median_of(samples)
                compiled = f"{report['compiled']}/{report['modules']} modules compiled from source"
                target = f"  {verdict(statistics.median(samples))}" if job == INGESTION_JOB else ""
                print(f"  {mode:17} {name:40} {figure}  [{compiled}]{target}")
        if args.no_runs:
            return 0
        runs = LocalRuns(work / "runs")
        targets = {
            "ingestion location": ["-m", "ingestion_project.definitions"],
            "both in one location (before the split)": ["-f", str(work / "runs" / "combined_location.py")],
        }
        print(f"A real run of {INGESTION_JOB} (`dagster job execute`, one local CSV), from process start:")
        for mode, (cached, repeats) in modes.items():
            for name, target in targets.items():
                figures = [runs.run(target, bytecode_env(cached, work)) for _ in range(min(repeats, 3))]
                first = [f["first document"] for f in figures]
                print(
                    f"  {mode:17} {name:40} first document {median_of(first)}  {verdict(statistics.median(first))}"
                    f"\n  {'':17} {'':40} run start {statistics.median(f['run start'] for f in figures):.2f} s,"
                    f" step start {statistics.median(f['step start'] for f in figures):.2f} s"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
