"""`make bench` (second part): the data path at scale, each figure next to its baseline and target.

1. Large CSV: the platform (`ingest_document` in a process of its own) against a streaming pyarrow baseline doing
   the same useful work (streamed GET + sha256, open_csv + ParquetWriter, upload_file): MB/s and peak RSS.
2. Hostile and heavy files at the default limits: outcome, error, seconds and peak RSS of each.
3. JSON and NDJSON at the default limits (near the 10,000-key limit, and plain records): seconds and peak RSS of
   each next to a CSV of the same size, as a ratio (target: within 2x, RSS < 1 GB).
4. Discovery over N processed keys: an incremental tick with 1,000 new keys, one with nothing new, and a full
   listing spread over ticks under the 20 s budget, next to the old one-tick full listing.
5. dbt: an incremental warehouse build after 10 new documents over 10, 100 and 1,000 documents of history, and
   a full refresh (what every build cost before the models were incremental).
6. Import (scripts/bench_import.py): seconds for a fresh process to load each code location, and for a real run of
   ingest_documents to reach its first document, with and without compiled bytecode.

    .venv/bin/python scripts/bench_scale.py [--size-mb 1000,2000] [--keys 100000]
        [--only csv,hostile,json,discovery,dbt,import]
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # devtools/ sits beside the package, not installed

from devtools.local_s3 import CONFLICTING_ENV_VARS, LocalS3Server  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LANDING, BRONZE = "scale-landing", "scale-bronze"
GB = 10**9


def orders_csv(path: Path, size_bytes: int) -> None:
    statuses = ("placed", "shipped", "delivered", "returned")
    with path.open("w") as f:
        f.write("order_id,customer_id,order_date,status,amount,currency\n")
        written, i = 0, 0
        while written < size_bytes:
            rows = "".join(
                f"{n},{n % 9973},2026-11-{n % 28 + 1:02d},{statuses[n % 4]},{(n * 37) % 100000 / 100:.2f},EUR\n"
                for n in range(i, i + 100_000)
            )
            f.write(rows)
            written += len(rows)
            i += 100_000


def parquet(table: pa.Table, **options) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", **options)
    return sink.getvalue()


def hostile_files() -> dict[str, bytes]:
    csv_100 = io.StringIO()
    csv_100.write("id,customer,day,amount,note\n")
    for n in range(1_700_000):
        csv_100.write(f"{n},cust-{n % 997},2026-11-{n % 28 + 1:02d},{n % 500}.{n % 100:02d},some words here\n")
    big = csv_100.getvalue().encode()
    return {
        "ndjson_new_key_every_record.ndjson": b"".join(b'{"key_%d": %d}\n' % (i, i) for i in range(20_000)),
        "json_new_key_every_record.json": b"[" + b",".join(b'{"key_%d": %d}' % (i, i) for i in range(20_000)) + b"]",
        "parquet_10m_equal_values.parquet": parquet(pa.table({"v": pa.repeat(pa.scalar(7), 10_000_000)})),
        "parquet_50m_rows.parquet": parquet(pa.table({"v": pa.repeat(pa.scalar(1), 50_000_000)})),
        "csv_1m_columns.csv": (",".join(f"c{i}" for i in range(1_000_000)) + "\n" + "1," * 999_999 + "1\n").encode(),
        "gzip_bomb.csv.gz": gzip.compress(b"id\n" + b"1\n" * 400_000_000, compresslevel=9),
        "json_nested_100k.json": b"[" * 100_000 + b"]" * 100_000,
        "csv_one_16mib_line.csv": b"id,text\n1," + b"x" * (16 * 2**20) + b"\n",
        "csv_100mib.csv (legal)": big[: 100 * 2**20 - 1000].rsplit(b"\n", 1)[0] + b"\n",
        "csv_400mib_as_gzip.csv.gz (legal)": gzip.compress(big * 4, compresslevel=1),
    }


def ingest_one(env: dict, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "ingest_one.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=REPO,
    )
    if out.returncode != 0:
        return {
            "outcome": "CRASHED",
            "error": f"exit {out.returncode}: {out.stderr.strip()[-300:]}",
            "seconds": 0,
            "peak_rss_bytes": 0,
        }
    return json.loads(out.stdout.strip().splitlines()[-1])


def mb(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def bench_csv(client, env: dict, work: Path, size_mb: int) -> None:
    path = work / "big.csv"
    print(f"\n## Large CSV ({size_mb:,} MB)", flush=True)
    orders_csv(path, size_mb * 10**6)
    client.upload_file(str(path), LANDING, "big/orders.csv")
    size = path.stat().st_size
    path.unlink()
    base = ingest_one(env, "--baseline", LANDING, "big/orders.csv", BRONZE)
    mine = ingest_one(env, env["INGESTION_SOURCES_FILE"], "big", "big/orders.csv")
    for name, r in (("baseline (streaming pyarrow)", base), ("platform (ingest_document)", mine)):
        rate = size / r["seconds"] / 10**6 if r["seconds"] else 0
        print(
            f"{name:30} {r['outcome']:8} {rate:6.1f} MB/s  {r['seconds']:6.1f} s  peak RSS {mb(r['peak_rss_bytes'])}"
            f" (Arrow {r.get('arrow_backend', '?')} peak {mb(r.get('arrow_peak_bytes') or 0)})"
            f"  rows {r.get('rows', '-')}"
        )
    if base["seconds"] and mine["seconds"]:
        ratio = base["seconds"] / mine["seconds"]
        print(
            f"throughput ratio platform/baseline: {ratio:.2f} (target >= 0.80: {'met' if ratio >= 0.8 else 'MISSED'})"
        )
        rss_ok = mine["peak_rss_bytes"] < GB
        print(f"platform peak RSS {mb(mine['peak_rss_bytes'])} (target < 1 GB: {'met' if rss_ok else 'MISSED'})")


def bench_hostile(client, env: dict) -> None:
    print("\n## Hostile and heavy files at the default limits (targets: clear error, RSS < 1 GB, < 10 s)", flush=True)
    for name, body in hostile_files().items():
        key = "hostile/" + name.split(" ")[0]
        client.put_object(Bucket=LANDING, Key=key, Body=body)
        r = ingest_one(env, env["INGESTION_SOURCES_FILE"], "hostile", key)
        ok = r["peak_rss_bytes"] < GB and r["seconds"] < 10 and (r["outcome"] == "FAILED") != ("legal" in name)
        what = r.get("error", f"{r.get('rows')} rows")[:150]
        print(
            f"{name:36} {mb(len(body)):>9}  {r['outcome']:8} {r['seconds']:5.1f} s  RSS {mb(r['peak_rss_bytes']):>9}"
            f"  {'ok' if ok else 'MISSED'}  {what}",
            flush=True,
        )


def json_files() -> dict[str, bytes]:
    """The JSON shapes that cost most per byte: keys cycling near the limit, wide records, and plain records."""
    statuses = ("placed", "shipped", "delivered", "returned")

    def cycling(size: int) -> bytes:
        lines, written, i = [], 0, 0
        while written < size:
            lines.append(b'{"key_%d": %d}\n' % (i % 10_000, i))
            written += len(lines[-1])
            i += 1
        return b"".join(lines)

    def array(size: int, record) -> bytes:
        parts, written, i = [], 1, 0
        while written < size:
            parts.append(json.dumps(record(i), separators=(",", ":")).encode())
            written += len(parts[-1]) + 1
            i += 1
        return b"[" + b",".join(parts) + b"]"

    wide_keys = [f"k{i}" for i in range(9_000)]
    return {
        "ndjson_10k_keys_cycling.ndjson": cycling(1_600_000),
        "json_array_9k_keys_per_record.json": array(
            72_000_000, lambda r: {k: (r + i) % 100 for i, k in enumerate(wide_keys)}
        ),
        "json_array_orders.json": array(
            72_000_000,
            lambda n: {
                "order_id": n,
                "customer_id": n % 9973,
                "order_date": f"2026-11-{n % 28 + 1:02d}",
                "status": statuses[n % 4],
                "amount": (n * 37) % 100000 / 100,
                "currency": "EUR",
            },
        ),
    }


def bench_json(client, env: dict, work: Path) -> None:
    print("\n## JSON next to a CSV of the same size (targets: within 2x the CSV's seconds, RSS < 1 GB)", flush=True)
    for name, body in json_files().items():
        key = f"hostile/{name}"
        client.put_object(Bucket=LANDING, Key=key, Body=body)
        mine = ingest_one(env, env["INGESTION_SOURCES_FILE"], "hostile", key)
        csv_path = work / "same-size.csv"
        orders_csv(csv_path, len(body))
        client.upload_file(str(csv_path), LANDING, "hostile/same-size.csv")
        csv_path.unlink()
        csv = ingest_one(env, env["INGESTION_SOURCES_FILE"], "hostile", "hostile/same-size.csv")
        ratio = mine["seconds"] / csv["seconds"] if csv["seconds"] else float("inf")
        ok = mine["outcome"] == "SUCCESS" and ratio <= 2 and mine["peak_rss_bytes"] < GB
        print(
            f"{name:36} {mb(len(body)):>8}  {mine['outcome']:8} {mine['seconds']:6.1f} s"
            f"  RSS {mb(mine['peak_rss_bytes']):>9}"
            f"  | CSV {csv['seconds']:5.1f} s  RSS {mb(csv['peak_rss_bytes']):>9}  | ratio {ratio:4.1f}x"
            f"  {'met' if ok else 'MISSED'}  {mine.get('error', '')[:120]}",
            flush=True,
        )


def bench_discovery(client, work: Path, keys: int) -> None:
    from ingestion_project.config import load_settings
    from ingestion_project.ingestion.discovery import ListingState, discover
    from ingestion_project.lib.keys import DocumentRef
    from ingestion_project.lib.ledger import Ledger, create_ledger_engine
    from ingestion_project.lib.object_store import S3ObjectStore
    from ingestion_project.lib.versions import DocumentVersion

    print(f"\n## Discovery over {keys:,} processed keys", flush=True)
    names = [f"events/2026/{i // 1000:04d}/{i % 1000:04d}.csv" for i in range(keys)]
    started = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=LANDING, Key=k, Body=b"id\n1\n"), names))
    print(f"(uploaded {keys:,} keys in {time.perf_counter() - started:.0f} s)")
    store = S3ObjectStore(client, LANDING)
    book = Ledger(create_ledger_engine(f"sqlite:///{work / 'ledger.sqlite'}"))
    versions, batch = [], 5_000
    for info in store.list_objects("events/"):
        versions.append(DocumentVersion(DocumentRef("events", LANDING, info.key), info.etag, None, info.size, None))
        if len(versions) == batch:
            book.record_discovered(versions)
            versions = []
    book.record_discovered(versions)

    def settings(mode: str, budget: float = 20):
        path = work / f"sources-{mode}.yaml"
        path.write_text(
            f"bronze: {{s3: {{bucket: {BRONZE}}}}}\nlisting_budget_seconds: {budget}\nsources:\n"
            f"  - {{name: events, type: s3, bucket: {LANDING}, prefix: events/, listing: {{mode: {mode}}}}}\n"
        )
        return load_settings(path)

    def tick(mode: str, states: dict, budget: float = 20) -> tuple[float, object]:
        begun = time.perf_counter()
        found = discover(settings(mode, budget), lambda _: store, book, states)
        return time.perf_counter() - begun, found

    old, found = tick("full", {}, budget=50)
    print(f"baseline: one full listing in one tick      {old:6.2f} s  ({found.listed['events']:,} listed)")
    new = [f"events/2027/{i:06d}.csv" for i in range(1_000)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=LANDING, Key=k, Body=b"id\n2\n"), new))
    state = {"events": ListingState(watermark=names[-1], full_at=datetime.now(UTC).isoformat())}
    seconds, found = tick("incremental", state)
    print(
        f"incremental, 1,000 new keys                 {seconds:6.2f} s  ({len(found.new):,} new; target < 5 s: "
        f"{'met' if seconds < 5 else 'MISSED'})"
    )
    seconds, found = tick("incremental", found.listing)
    print(
        f"incremental, nothing new                    {seconds:6.2f} s  ({len(found.new):,} new; target < 1 s: "
        f"{'met' if seconds < 1 else 'MISSED'})"
    )
    for budget in (20, 5):
        states, times = {}, []
        while True:
            seconds, found = tick("full", states, budget)
            times.append(seconds)
            states = found.listing
            if not found.unfinished or len(times) > 40:
                break
        print(
            f"full mode, {keys + 1000:,} keys, budget {budget:>2} s: {len(times)} tick(s), longest {max(times):.2f} s "
            f"(target: no tick over 20 s: {'met' if max(times) <= 20 else 'MISSED'})"
        )


def put_bronze_orders(client, start: int, count: int, rows: int = 100) -> None:
    """Write orders documents ``start`` .. ``start + count`` straight into bronze, in the layout ingestion writes."""
    from ingestion_project.lib.bronze import BronzeVersion, Lineage, columns_of, manifest_row, to_parquet_bytes
    from ingestion_project.lib.keys import DocumentRef

    def put(index: int) -> None:
        if index < 0:  # the customers document every order refers to
            ref, table = (
                DocumentRef("customers", LANDING, "customers/all.csv"),
                pa.table({"customer_id": [f"C{n}" for n in range(100)], "name": [f"Customer {n}" for n in range(100)]}),
            )
        else:
            ref = DocumentRef("orders", LANDING, f"orders/{index:05d}.csv")
            table = pa.table(
                {
                    "order_id": [f"ORD-{index}-{n}" for n in range(rows)],
                    "customer_id": [f"C{n % 100}" for n in range(rows)],
                    "order_date": [f"2026-11-{n % 28 + 1:02d}" for n in range(rows)],
                    "status": ["delivered"] * rows,
                    "amount": [float(n) for n in range(rows)],
                    "currency": ["USD"] * rows,
                }
            )
        now = datetime.now(UTC)
        etag = f"e{index}"
        lineage = Lineage(ref, etag, "0" * 64, now)
        data = table
        for name, column in lineage.columns(table.num_rows, 1).items():
            data = data.append_column(name, column)
        version = BronzeVersion(ref, etag, is_text=False)
        client.put_object(Bucket=BRONZE, Key=f"dbt/{version.data_key}", Body=to_parquet_bytes(data))
        manifest = manifest_row(
            source=ref.source,
            bucket=ref.bucket,
            object_key=ref.key,
            partition_key=ref.partition_key,
            etag=etag,
            size_bytes=1000,
            sha256="0" * 64,
            content_type="text/csv",
            format="csv",
            record_count=table.num_rows,
            columns_json=columns_of(table.schema),
            bronze_path=f"s3://{BRONZE}/dbt/{version.data_key}",
            last_modified_at=now,
            ingested_at=now,
            discovery_seq=index + 2,
        )
        client.put_object(Bucket=BRONZE, Key=f"dbt/{version.manifest_key}", Body=to_parquet_bytes(manifest))

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(start, start + count)))


def bench_dbt(client, env: dict, work: Path) -> None:
    print("\n## dbt: a warehouse build after 10 new documents, by documents of history (S3 bronze)", flush=True)
    scratch = work / "dbt"
    env = {**env, "INGESTION_WAREHOUSE_PATH": str(scratch / "warehouse.duckdb"), "DO_NOT_TRACK": "1"}
    dbt = [str(Path(sys.executable).parent / "dbt"), "build", "--project-dir", str(REPO / "dbt_project")]
    dbt += ["--profiles-dir", str(REPO / "dbt_project"), "--target-path", str(scratch / "target")]
    dbt += ["--log-path", str(scratch / "logs"), "--vars", json.dumps({"bronze_roots": [f"s3://{BRONZE}/dbt"]})]

    def build(*extra: str) -> float:
        begun = time.perf_counter()
        out = subprocess.run([*dbt, *extra], env=env, capture_output=True, text=True, cwd=REPO / "dbt_project")
        seconds = time.perf_counter() - begun
        if out.returncode != 0:
            print(f"dbt build failed ({out.returncode}): {out.stdout[-2000:]}", flush=True)
        return seconds

    put_bronze_orders(client, -1, 1)
    history, times = 0, {}
    for target in (10, 100, 1000):
        put_bronze_orders(client, history, target - history)
        build()  # the warehouse catches up with the history, untimed
        put_bronze_orders(client, target, 10)
        history = target + 10
        times[target] = build()
        print(f"10 new documents over {target:>5,} of history   {times[target]:6.2f} s", flush=True)
    full = build("--full-refresh")
    print(f"full refresh over {history:,} documents (baseline)   {full:6.2f} s")
    ratio = times[1000] / times[10]
    print(
        f"ratio 1,000 / 10 of history: {ratio:.2f}; 1,000 / 100: {times[1000] / times[100]:.2f} "
        f"(target about the same: {'met' if ratio < 1.5 else 'MISSED'})"
    )


def bench_import() -> None:
    print("\n## Import: what a run process loads before its first document", flush=True)
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_import.py"), "--repeats", "3", "--cold-repeats", "1"],
        check=True,
        cwd=REPO,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--size-mb", default=os.environ.get("BENCH_CSV_MB", "1000,2000"), help="CSV sizes, comma-separated"
    )
    parser.add_argument("--keys", type=int, default=int(os.environ.get("BENCH_KEYS", "100000")))
    parser.add_argument("--only", default="csv,hostile,json,discovery,dbt,import")
    args = parser.parse_args()
    only = set(args.only.split(","))
    if "import" in only:
        bench_import()
    if not only & {"csv", "hostile", "json", "dbt", "discovery"}:
        return 0
    with tempfile.TemporaryDirectory(prefix="ingestion-bench-scale-") as tmp:
        work = Path(tmp)
        with LocalS3Server(work / "s3", buckets=(LANDING, BRONZE)) as server:
            env = {k: v for k, v in os.environ.items() if k not in CONFLICTING_ENV_VARS}
            env.update(server.env(), INGESTION_SOURCES_FILE=str(work / "sources.yaml"), DO_NOT_TRACK="1")
            (work / "sources.yaml").write_text(
                f"bronze: {{s3: {{bucket: {BRONZE}, prefix: bronze}}}}\nsources:\n"
                f"  - {{name: big, type: s3, bucket: {LANDING}, prefix: big/,"
                " limits: {object_size: 8GiB, decompressed_size: 16GiB, rows: 500000000}}\n"
                f"  - {{name: hostile, type: s3, bucket: {LANDING}, prefix: hostile/}}\n"
            )
            se = server.env()
            client = boto3.client(
                "s3",
                endpoint_url=se["AWS_ENDPOINT_URL_S3"],
                region_name=se["AWS_REGION"],
                aws_access_key_id=se["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=se["AWS_SECRET_ACCESS_KEY"],
                config=Config(max_pool_connections=32),
            )
            if "csv" in only:
                for size_mb in args.size_mb.split(","):
                    bench_csv(client, env, work, int(size_mb))
            if "hostile" in only:
                bench_hostile(client, env)
            if "json" in only:
                bench_json(client, env, work)
            if "dbt" in only:
                bench_dbt(client, env, work)
            if "discovery" in only:
                bench_discovery(client, work, args.keys)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
