"""The local S3 server (weed mini), its CLI, the sample set and the seeding."""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from devtools import local_s3
from devtools.local_s3 import LocalS3Error, LocalS3Server
from devtools.seed import DEFAULT_SAMPLES_DIR, seed

ORDER_COLUMNS = ["order_id", "customer_id", "order_date", "status", "amount", "currency"]
ORDER_STATUSES = {"placed", "shipped", "delivered", "returned", "cancelled"}
RELEASE_NOTES_KEY = "notes/2026/release notes – ü.md"
# Tests that start their own server still take `s3_server`, so that a missing `weed` skips them (or, in CI,
# fails them) exactly like the rest.


def _process_gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while local_s3.pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not local_s3.pid_alive(pid)


def test_server_answers_signed_requests_on_loopback(s3_server):
    assert s3_server.endpoint_url.startswith("http://127.0.0.1:")
    assert s3_server.is_answering()
    assert (s3_server.state_dir / local_s3.STATE_FILE).exists()
    # weed wipes unknown files in its -dir, so nothing of ours may live there.
    assert not (s3_server.data_dir / local_s3.STATE_FILE).exists()


def test_env_configured_client_round_trips_an_object(s3_client, s3_server, fresh_bucket):
    assert s3_client.meta.endpoint_url == s3_server.endpoint_url

    s3_client.put_object(Bucket=fresh_bucket, Key="in/hello.txt", Body=b"hello, s3", ContentType="text/plain")
    got = s3_client.get_object(Bucket=fresh_bucket, Key="in/hello.txt")
    listed = s3_client.list_objects_v2(Bucket=fresh_bucket, Prefix="in/")

    assert got["Body"].read() == b"hello, s3"
    assert got["ContentType"] == "text/plain"
    assert [obj["Key"] for obj in listed["Contents"]] == ["in/hello.txt"]


@pytest.mark.parametrize(
    ("key_id", "secret", "expected_code"),
    [
        ("not-a-known-key", local_s3.DEV_SECRET_ACCESS_KEY, "InvalidAccessKeyId"),
        (local_s3.DEV_ACCESS_KEY_ID, "wrong-secret", "SignatureDoesNotMatch"),
    ],
)
def test_wrong_credentials_are_refused(s3_server, fresh_bucket, key_id, secret, expected_code):
    intruder = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        region_name=local_s3.REGION,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )

    with pytest.raises(ClientError) as refused:
        intruder.put_object(Bucket=fresh_bucket, Key="intruder.txt", Body=b"x")

    assert refused.value.response["Error"]["Code"] == expected_code


def test_listing_2500_keys_paginates_in_pages_of_at_most_1000(s3_client, fresh_bucket):
    keys = [f"many/{i:05d}.txt" for i in range(2500)]
    with ThreadPoolExecutor(max_workers=8) as pool:  # boto3's default connection pool holds 10
        list(pool.map(lambda key: s3_client.put_object(Bucket=fresh_bucket, Key=key, Body=b"."), keys))

    pages = s3_client.get_paginator("list_objects_v2").paginate(
        Bucket=fresh_bucket, Prefix="many/", PaginationConfig={"MaxItems": 3000}
    )
    page_sizes, listed = [], []
    deadline = time.monotonic() + 60
    for page in pages:
        assert len(page_sizes) < 10 and time.monotonic() < deadline, "pagination does not terminate"
        page_sizes.append(len(page.get("Contents", [])))
        listed += [obj["Key"] for obj in page.get("Contents", [])]

    assert max(page_sizes) <= 1000
    assert len(page_sizes) >= 3
    assert listed == keys


def test_folder_marker_key_can_be_created(s3_client, fresh_bucket):
    s3_client.put_object(Bucket=fresh_bucket, Key="reports/2026/", Body=b"")

    head = s3_client.head_object(Bucket=fresh_bucket, Key="reports/2026/")
    listed = s3_client.list_objects_v2(Bucket=fresh_bucket, Prefix="reports/")

    assert head["ContentLength"] == 0
    assert [obj["Key"] for obj in listed["Contents"]] == ["reports/2026/"]


def test_sample_orders_are_well_formed_and_reference_known_customers():
    landing = DEFAULT_SAMPLES_DIR / "landing"
    customers = {c["customer_id"] for c in json.loads((landing / "customers/customers.json").read_text())}
    readers = {
        "2026-11-01.csv": lambda text: list(csv.DictReader(io.StringIO(text))),
        "2026-11-02.tsv": lambda text: list(csv.DictReader(io.StringIO(text), delimiter="\t")),
        # parse_float=str keeps the amounts as written, so their two decimals can be checked.
        "2026-11-03.ndjson": lambda text: [json.loads(line, parse_float=str) for line in text.splitlines()],
        "2026-11-04.json": functools.partial(json.loads, parse_float=str),
    }
    order_ids = []
    for name, read in readers.items():
        rows = read((landing / "orders" / name).read_text())
        assert 6 <= len(rows) <= 10, name
        for row in rows:
            assert list(row) == ORDER_COLUMNS, name
            assert row["customer_id"] in customers and row["status"] in ORDER_STATUSES, row
            assert row["order_date"] == name[:10] and row["currency"] == "USD", row
            assert re.fullmatch(r"\d+\.\d\d", row["amount"]), row
        order_ids += [row["order_id"] for row in rows]
    assert len(order_ids) == len(set(order_ids))
    broken = list(csv.reader((landing / "orders/2026-11-05-broken.csv").open()))
    assert {len(row) for row in broken} == {len(ORDER_COLUMNS), len(ORDER_COLUMNS) + 2}


def test_seed_uploads_the_sample_set_idempotently(s3_client, tmp_path):
    # Seed under unique bucket names so that other tests' `landing`/`docs` buckets are left alone.
    names = {bucket: f"seed-{bucket}-{uuid.uuid4().hex[:8]}" for bucket in ("landing", "docs")}
    for bucket, name in names.items():
        shutil.copytree(DEFAULT_SAMPLES_DIR / bucket, tmp_path / name)
    expected = {
        (names[bucket], path.relative_to(DEFAULT_SAMPLES_DIR / bucket).as_posix())
        for bucket in names
        for path in (DEFAULT_SAMPLES_DIR / bucket).rglob("*")
        if path.is_file()
    }
    empty = f"seed-bronze-{uuid.uuid4().hex[:8]}"

    first = seed(s3_client, tmp_path, buckets=[*names.values(), empty])
    second = seed(s3_client, tmp_path, buckets=[*names.values(), empty])

    assert set(first) == expected and len(first) == 10
    assert second == first
    notes = s3_client.get_object(Bucket=names["docs"], Key=RELEASE_NOTES_KEY)
    assert notes["ContentType"] == "text/markdown"
    assert notes["Body"].read() == (DEFAULT_SAMPLES_DIR / "docs" / RELEASE_NOTES_KEY).read_bytes()
    ndjson = s3_client.head_object(Bucket=names["landing"], Key="orders/2026-11-03.ndjson")
    assert ndjson["ContentType"] == "application/x-ndjson"
    assert s3_client.list_objects_v2(Bucket=empty)["KeyCount"] == 0


def test_stop_leaves_no_process_and_no_state_file(s3_server, tmp_path):
    with LocalS3Server(tmp_path / "s3") as server:
        pid = server.pid
        assert pid is not None and local_s3.pid_alive(pid)

    assert _process_gone(pid, within=0)
    assert not (tmp_path / "s3" / local_s3.STATE_FILE).exists()


def test_startup_timeout_error_includes_the_log_tail(s3_server, tmp_path, monkeypatch):
    # A probe that never succeeds stands in for a server that hangs during startup.
    monkeypatch.setattr(LocalS3Server, "is_answering", lambda self: False)
    server = LocalS3Server(tmp_path / "s3", startup_timeout=2)

    try:
        with pytest.raises(LocalS3Error, match=r"did not answer(.|\n)*tail of .*weed-console\.log") as failed:
            server.start()
    finally:
        server.stop()  # only does something if start() unexpectedly succeeded

    assert "Starting SeaweedFS Mini" in str(failed.value)
    pid = int(re.search(r"weed mini \(pid (\d+)\)", str(failed.value)).group(1))
    assert server.pid is None and _process_gone(pid, within=0), "a failed start must not leave weed running"


def test_cli_start_is_idempotent_detached_and_stop_kills_it(s3_server, tmp_path):
    # Without the caller's AWS_* variables the CLI falls back to the documented dev credentials.
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}

    def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "devtools.local_s3", *args, "--state-dir", state]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=check)

    state = str(tmp_path / "s3")
    try:
        cli("start")
        recorded = json.loads((tmp_path / "s3" / local_s3.STATE_FILE).read_text())
        pid, ports = recorded["pid"], recorded["ports"].values()
        again = cli("start")
        exports = cli("env").stdout

        assert local_s3.pid_alive(pid), "the server must outlive the CLI that started it"
        assert json.loads((tmp_path / "s3" / local_s3.STATE_FILE).read_text())["pid"] == pid
        assert f"pid {pid}" in again.stdout
        assert "export AWS_ENDPOINT_URL_S3=http://127.0.0.1:" in exports
        assert f"export AWS_ACCESS_KEY_ID={local_s3.DEV_ACCESS_KEY_ID}" in exports
    finally:
        cli("stop")

    assert _process_gone(pid)
    assert cli("env", check=False).returncode == 1
    # weed leaves unix sockets named after its ports in /tmp; stop() removes them once weed has fully exited.
    leftovers = [path for port in ports for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock")]
    leftovers += [path for port in ports for path in Path("/tmp").glob(f"seaweedfs-*-{port + 10000}.sock")]
    assert leftovers == []
