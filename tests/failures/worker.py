"""A worker in its own process for the failure tests: the real ingestion job, one run, then a report.

    python -m tests.failures.worker --sources FILE --ledger-url URL --dagster-home DIR --endpoint-url URL \\
        (--request FILE | --partition KEY) --result FILE [--ready FILE --go FILE]

``--request`` runs a sensor's run request as the daemon launches it: a batch of pinned versions (the file is JSON
with the request's ``run_config``, ``tags`` and ``run_key``, see ``s3_support.write_request``). ``--partition``
runs one partition at its current version, as "Materialize" in the UI does. S3 credentials come from the
environment (the test's AWS_* variables); the S3 endpoint is the test's proxy. With ``--ready``/``--go`` the worker
loads everything, creates the ready file and starts its run only once the go file exists (waiting at most a
minute), so two workers can be released at the same moment. ``--file-size-limit`` caps every file the worker
writes (RLIMIT_FSIZE), as a nearly full disk does. The result file gets the run id, its success, the
materialized partitions and the run's log lines.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import dagster as dg

from ingestion_project.core.resources import IngestionResource, LedgerResource, S3Resource
from tests.failures.conftest import Pipeline

GO_TIMEOUT_SECONDS = 60.0


def _wait_for(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout:.0f}s")
        time.sleep(0.005)


def peak_rss_bytes() -> int:
    """This process's peak resident size (VmHWM: unlike ru_maxrss, not inherited from the parent across fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("sources", "ledger-url", "dagster-home", "endpoint-url", "result"):
        parser.add_argument(f"--{name}", required=True)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--request", help="a JSON file with the run config, tags and run key of a sensor's request")
    what.add_argument("--partition", help="a partition key, run at the object's current version")
    parser.add_argument("--s3-max-attempts", type=int, help="S3Resource.max_attempts (0: no botocore retry)")
    parser.add_argument(
        "--file-size-limit", type=int, help="RLIMIT_FSIZE in bytes: no file the worker writes grows past it (disk full)"
    )
    parser.add_argument("--ready")
    parser.add_argument("--go")
    args = parser.parse_args(argv)
    if args.file_size_limit is not None:
        # Python ignores SIGXFSZ, so a write past the limit fails with EFBIG, as a full disk fails with ENOSPC.
        resource.setrlimit(resource.RLIMIT_FSIZE, (args.file_size_limit, resource.RLIM_INFINITY))

    resources = {
        "ingestion": IngestionResource(
            s3=S3Resource(
                endpoint_url=args.endpoint_url,
                **({"max_attempts": args.s3_max_attempts} if args.s3_max_attempts is not None else {}),
            ),
            sources_file=args.sources,
        ),
        "ledger": LedgerResource(url=args.ledger_url),
    }
    request = None
    if args.request:
        pinned = json.loads(Path(args.request).read_text(encoding="utf-8"))
        request = dg.RunRequest(run_key=pinned["run_key"], run_config=pinned["run_config"], tags=pinned["tags"])
    overrides = {"telemetry": {"enabled": False}}
    with dg.DagsterInstance.local_temp(args.dagster_home, overrides=overrides) as instance:
        pipeline = Pipeline(resources, instance)
        # Resolve the job and load botocore's S3 client code now, so that a released worker claims at once.
        pipeline.defs.resolve_job_def("ingest_documents")
        resources["ingestion"].s3.get_client()
        if args.ready:
            Path(args.ready).touch()
            _wait_for(Path(args.go), GO_TIMEOUT_SECONDS)
        run = pipeline.run_request(request) if request is not None else pipeline.run(args.partition)
        report = {
            "run_id": run.run_id,
            "success": run.success,
            "materialized": [m.partition for m in run.asset_materializations_for_node("raw_documents")],
            "messages": [e.user_message for e in instance.all_logs(run.run_id) if not e.is_dagster_event],
            "peak_rss_bytes": peak_rss_bytes(),
        }
    result = Path(args.result)
    result.with_suffix(".tmp").write_text(json.dumps(report))
    result.with_suffix(".tmp").replace(result)
    return 0 if run.success else 1


if __name__ == "__main__":
    raise SystemExit(main())
