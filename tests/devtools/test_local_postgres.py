"""The local PostgreSQL server: connections, loopback-only listening, row locking, clean stops."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from devtools.local_postgres import LocalPostgres, LocalPostgresError, find_postgres_bin
from devtools.local_s3 import pid_alive

# Tests that start their own server still take `postgres_server`, so that missing binaries skip them (or, in CI,
# fail them) exactly like the rest.
LOCK_TIMEOUT = {"options": "-c lock_timeout=5s"}  # a locking bug fails the test instead of hanging it


@pytest.fixture
def state_dir() -> Iterator[Path]:
    """A state dir the `postgres` user can reach (pytest's own tmp dirs are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="ingestion-pg-test-"))
    yield path
    shutil.rmtree(path)


def _engine(url: str, **connect_args: str) -> sa.Engine:
    return sa.create_engine(url, poolclass=NullPool, connect_args=connect_args)


def _process_tree(pid: int) -> set[int]:
    """`pid` and its direct children (the postmaster's backends and auxiliary processes)."""
    children = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(") ", 1)[1].split()[1]) == pid:
                children.add(int(entry.name))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return {pid, *children}


def _loopback_listeners(port: int) -> dict[str, set[str]]:
    """Local addresses (hex, as /proc/net shows them) in LISTEN state on `port`, per protocol file."""
    found: dict[str, set[str]] = {"tcp": set(), "tcp6": set()}
    for proto in found:
        for line in Path(f"/proc/net/{proto}").read_text().splitlines()[1:]:
            local, _remote, state = line.split()[1:4]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found[proto].add(address)
    return found


def test_ingestion_role_connects_over_tcp_and_round_trips_a_row(postgres_server, postgres_url):
    assert postgres_server.url == (
        f"postgresql+psycopg2://ingestion:ingestion@127.0.0.1:{postgres_server.port}/ingestion"
    )
    engine = _engine(postgres_url)
    with engine.begin() as conn:
        # The database's owner may create tables in `public`, which PostgreSQL 15 denies to other roles.
        conn.execute(sa.text("CREATE TABLE documents (id serial PRIMARY KEY, object_key text NOT NULL)"))
        conn.execute(sa.text("INSERT INTO documents (object_key) VALUES (:key)"), {"key": "orders/ü 1.csv"})
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, object_key FROM documents")).all()
        who = conn.execute(sa.text("SELECT current_user, inet_server_addr()::text, current_setting('TimeZone')")).one()

    assert rows == [(1, "orders/ü 1.csv")]
    assert tuple(who) == ("ingestion", "127.0.0.1/32", "UTC")
    with _engine(postgres_server.url).connect() as conn:
        assert conn.execute(sa.text("SELECT current_database()")).scalar_one() == "ingestion"


def test_each_test_database_starts_empty_and_is_gone_after_drop(postgres_server, postgres_url):
    name = postgres_url.rsplit("/", 1)[1]
    with _engine(postgres_url).connect() as conn:
        tables = conn.execute(sa.text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")).scalar_one()
    other = postgres_server.create_database(f"{name}_other")
    lingering = _engine(other).connect()  # an open connection must not keep the database alive
    try:
        postgres_server.drop_database(f"{name}_other")
    finally:
        lingering.invalidate()
        lingering.close()

    with _engine(postgres_server.url).connect() as conn:
        databases = set(conn.execute(sa.text("SELECT datname FROM pg_database")).scalars())
    assert tables == 0
    assert name in databases and f"{name}_other" not in databases


def test_wrong_password_is_refused_over_tcp(postgres_server):
    url = postgres_server.url.replace("ingestion:ingestion@", "ingestion:wrong@")

    with pytest.raises(sa.exc.OperationalError, match="password authentication failed"):
        _engine(url).connect()


def test_server_listens_on_127_0_0_1_only(postgres_server):
    with _engine(postgres_server.url).connect() as conn:
        listen_addresses = conn.execute(sa.text("SHOW listen_addresses")).scalar_one()
    listeners = _loopback_listeners(postgres_server.port)

    assert listen_addresses == "127.0.0.1"
    assert listeners == {"tcp": {"0100007F"}, "tcp6": set()}  # 127.0.0.1 in /proc's byte order, and no IPv6
    with pytest.raises(OSError), socket.create_connection(("::1", postgres_server.port), timeout=2):
        pass


def test_skip_locked_lets_a_second_worker_claim_the_next_row(postgres_url):
    engine = _engine(postgres_url, **LOCK_TIMEOUT)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE jobs (id int PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO jobs VALUES (1), (2)"))
    claim = sa.text("SELECT id FROM jobs ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED")

    with engine.connect() as first, engine.connect() as second:
        first_claim = first.execute(claim).scalar_one()
        second_claim = second.execute(claim).scalar_one()
        with pytest.raises(sa.exc.OperationalError, match="could not obtain lock"):
            second.execute(sa.text("SELECT id FROM jobs WHERE id = 1 FOR UPDATE NOWAIT"))
        second.rollback()
        first.rollback()
        after_release = second.execute(claim).scalar_one()

    assert (first_claim, second_claim, after_release) == (1, 2, 1)


def test_stop_leaves_no_process(postgres_server, state_dir):
    with LocalPostgres(state_dir) as server:
        with _engine(server.url).connect() as conn:  # a backend too, not only the auxiliary processes
            conn.execute(sa.text("SELECT 1"))
            processes = _process_tree(server.pid)
        started = time.monotonic()

    assert len(processes) >= 4 and time.monotonic() - started < 10
    assert not [pid for pid in processes if pid_alive(pid)]
    assert server.pid is None and not (state_dir / "data" / "postmaster.pid").exists()
    server.stop()  # stopping twice is harmless


def test_stop_kills_a_server_that_ignores_pg_ctl(postgres_server, state_dir):
    server = LocalPostgres(state_dir).start()
    processes = _process_tree(server.pid)
    os.kill(server.pid, signal.SIGSTOP)  # a stopped postmaster never acts on pg_ctl's shutdown request

    try:
        server.stop(timeout=1)
    finally:
        for pid in processes:  # should the fallback fail, do not leave a frozen server behind
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)

    assert not [pid for pid in processes if pid_alive(pid)]


def test_start_on_a_taken_port_fails_with_the_server_log_and_leaves_nothing_running(postgres_server, state_dir):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        server = LocalPostgres(state_dir, port=port)

        with pytest.raises(LocalPostgresError, match=r"exited during startup(.|\n)*tail of .*server\.log") as failed:
            server.start()

    assert "Address already in use" in str(failed.value)
    assert server.pid is None
    assert not (state_dir / "data" / "postmaster.pid").exists()


def test_find_postgres_bin_picks_the_newest_complete_version(tmp_path):
    for version, binaries in [("9.6", 3), ("15", 3), ("16", 3), ("17", 2), ("main", 3)]:
        bin_dir = tmp_path / version / "bin"
        bin_dir.mkdir(parents=True)
        for name in ("initdb", "pg_ctl", "postgres")[:binaries]:
            (bin_dir / name).touch(mode=0o755)

    assert find_postgres_bin(tmp_path) == tmp_path / "16" / "bin"  # 17 lacks `postgres`; 9.6 < 15 numerically
    assert find_postgres_bin(tmp_path / "missing") is None
