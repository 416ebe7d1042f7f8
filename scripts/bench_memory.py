"""`make bench` (memory part): six ordinary 15 MB CSVs in one run's worker threads under `run_memory_limit`.

For no budget, 600 MiB and 1 GiB: each in a fresh process, the six documents land from a local folder into a
local bronze folder through ``ingest_document`` on ``documents_in_flight`` (4) threads, each reserving its share of
the budget as a run does (lib/memory.py). Prints what landed, the peak resident size over the start, the seconds,
and how many documents the budget stopped.

    .venv/bin/python scripts/bench_memory.py [--budgets none,600MiB,1GiB]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

DOCUMENTS, THREADS, CSV_BYTES = 6, 4, 15 * 2**20


def write_csvs(folder: Path) -> None:
    rnd = random.Random(16)
    lines, total = ["order_id,customer,amount,placed_at,note"], 0
    while total < CSV_BYTES:
        n = len(lines)
        lines.append(
            f"O-{n},C-{rnd.randrange(10**6)},{rnd.randrange(10**5)}.{rnd.randrange(100):02},"
            f"2026-01-{1 + n % 28:02}T10:00:00Z,note {rnd.random():.12f}"
        )
        total += len(lines[-1]) + 1
    body = "\n".join(lines) + "\n"
    for n in range(DOCUMENTS):
        (folder / f"orders-{n}.csv").write_text(body)


def one_run(folder: str, budget: int | None) -> dict:
    """In this process: the six documents through a run's budget and threads."""
    from ingestion_project.config import LocalSourceConfig
    from ingestion_project.ingestion.documents import ingest_document
    from ingestion_project.lib.errors import DocumentError
    from ingestion_project.lib.keys import DocumentRef
    from ingestion_project.lib.memory import MemoryBudget, resident_bytes
    from ingestion_project.lib.object_store import LocalObjectStore
    from ingestion_project.lib.versions import DocumentVersion

    source = LocalSourceConfig(name="bench", type="local", path=folder)
    store = LocalObjectStore(folder)
    bronze = tempfile.mkdtemp(prefix="bench-bronze-")
    start, peak, done = resident_bytes() or 0, [0], threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            peak[0] = max(peak[0], (resident_bytes() or 0) - start)

    def document(n: int, run_budget: MemoryBudget) -> str:
        key = f"orders-{n}.csv"
        info = store.head(key)
        version = DocumentVersion(DocumentRef("bench", "", key), info.etag, None, info.size, info.last_modified, None)
        try:
            with run_budget.reserve(key, info.size):
                ingest_document(version, source, store, (LocalObjectStore(bronze), ""))
        except DocumentError as error:
            return f"{type(error).__name__}: {error}"
        return "landed"

    threading.Thread(target=sample, daemon=True).start()
    began = time.monotonic()
    with MemoryBudget(budget) as run_budget, ThreadPoolExecutor(THREADS) as pool:
        outcomes = list(pool.map(lambda n: document(n, run_budget), range(DOCUMENTS)))
    done.set()
    return {
        "landed": outcomes.count("landed"),
        "failed": [o for o in outcomes if o != "landed"],
        "peak_mib": round(peak[0] / 2**20),
        "seconds": round(time.monotonic() - began, 1),
        "stopped": run_budget.cancellations,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="none,600MiB,1GiB")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        folder, budget = args.child
        print(json.dumps(one_run(folder, None if budget == "none" else int(budget))))
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from ingestion_project.config import parse_size

    print(f"Memory budget: {DOCUMENTS} CSVs of {CSV_BYTES // 2**20} MB on {THREADS} threads, one fresh process each")
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as folder:
        write_csvs(Path(folder))
        for label in args.budgets.split(","):
            budget = "none" if label == "none" else str(parse_size(label))
            out = subprocess.run(
                [sys.executable, __file__, "--child", folder, budget], capture_output=True, text=True, check=True
            ).stdout
            figures = json.loads(out.strip().splitlines()[-1])
            print(
                f"  run_memory_limit {label:>7}: {figures['landed']}/{DOCUMENTS} landed, peak "
                f"{figures['peak_mib']} MiB over the start, {figures['seconds']} s, "
                f"{figures['stopped']} stopped {figures['failed'] or ''}"
            )


if __name__ == "__main__":
    main()
