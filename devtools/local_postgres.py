"""A throwaway PostgreSQL for tests: Debian's server binaries, a fresh cluster in a state dir, loopback only.

The state dir holds `data/` (the cluster), `run/` (the unix socket, private to the server's user) and
`server.log`. PostgreSQL refuses to run as root, so as root the cluster belongs to the Debian package's `postgres`
system user, and every parent of the state dir must be searchable by that user: pytest's private tmp dirs are not,
a `tempfile.mkdtemp()` under /tmp is. `install_system.sh postgresql` installs the binaries.

    with LocalPostgres(state_dir) as pg:
        engine = sqlalchemy.create_engine(pg.url)
"""

from __future__ import annotations

import os
import pwd
import re
import signal
import socket
import subprocess
import time
from contextlib import closing, suppress
from pathlib import Path

import psycopg2
from psycopg2 import sql
from sqlalchemy import URL

from devtools.local_s3 import pid_alive

POSTGRES_ROOT = Path("/usr/lib/postgresql")
SYSTEM_USER = "postgres"  # the Debian package's system user, and the cluster's superuser
INSTALL = "devtools/install_system.sh postgresql"  # as root: the Debian package, when it is missing
ROLE = PASSWORD = DATABASE = "ingestion"
LOG_FILE = "server.log"
_BINARIES = ("initdb", "pg_ctl", "postgres")
# A throwaway cluster needs no durability; fsync and friends dominate its run time.
_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "timezone": "UTC",
}
_SOCKET_PATH_MAX = 107  # sun_path on Linux, without its terminating NUL
_PORT_CLASH = "Address already in use"
_START_ATTEMPTS = 3


class LocalPostgresError(RuntimeError):
    """The local PostgreSQL server could not be found, started, reached or stopped."""


def find_postgres_bin(root: Path = POSTGRES_ROOT) -> Path | None:
    """`<root>/<version>/bin` of the newest version that has initdb, pg_ctl and postgres; None if there is none."""
    found = [
        (tuple(int(part) for part in bin_dir.parent.name.split(".")), bin_dir)
        for bin_dir in root.glob("*/bin")
        if re.fullmatch(r"\d+(\.\d+)*", bin_dir.parent.name)
        and all(os.access(bin_dir / name, os.X_OK) for name in _BINARIES)
    ]
    return max(found, key=lambda item: item[0])[1] if found else None


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now (another process may still take it before we bind)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[1])
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


class LocalPostgres:
    """One PostgreSQL cluster serving 127.0.0.1 only, its files in `state_dir`; also a context manager.

    `start()` initialises the cluster (unless `data/` already holds one), launches the server as our descendant,
    waits until it accepts connections and creates the `ingestion` role and database. `stop()` stops what
    `start()` launched, and nothing else. Unix-socket connections are trusted (that is how we administer it);
    TCP connections need the role's password.
    """

    def __init__(
        self, state_dir: str | os.PathLike[str], *, port: int | None = None, startup_timeout: float = 30.0
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.data_dir = self.state_dir / "data"
        self.socket_dir = self.state_dir / "run"
        self.log_path = self.state_dir / LOG_FILE
        self.port = port
        self._fixed_port = port
        self.startup_timeout = startup_timeout
        self.pid: int | None = None  # the postmaster's, once it accepts connections
        self._bin: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None  # the postmaster, or runuser running it as root

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the `ingestion` database as the `ingestion` role, over TCP."""
        return self.url_for(DATABASE)

    def url_for(self, database: str) -> str:
        """SQLAlchemy URL of `database` on this server as the `ingestion` role, over TCP."""
        if self.port is None:
            raise LocalPostgresError("the server has not been started")
        url = URL.create("postgresql+psycopg2", ROLE, PASSWORD, "127.0.0.1", self.port, database)
        return url.render_as_string(hide_password=False)

    def start(self) -> LocalPostgres:
        """Initialise if needed, launch on a free port (or the given one), wait until ready, create the role."""
        if self._proc is not None:
            return self
        self._bin = find_postgres_bin()
        if self._bin is None:
            raise LocalPostgresError(f"no PostgreSQL server binaries under {POSTGRES_ROOT}: run {INSTALL}")
        self._prepare_state_dir()
        running = self._postmaster_pid_from_file()
        if running is not None:  # postgres would refuse as well, but with a less helpful message
            raise LocalPostgresError(f"a server is already running for {self.data_dir} (pid {running})")
        try:
            if not (self.data_dir / "PG_VERSION").exists():
                self._initdb()
            self._launch_until_ready()
            self._bootstrap()
        except BaseException:
            self.stop()
            raise
        return self

    def _server_user_cmd(self, cmd: list[str]) -> list[str]:
        return ["runuser", "-u", SYSTEM_USER, "--", *cmd] if os.geteuid() == 0 else cmd

    def _run_as_server_user(self, cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._server_user_cmd(cmd),
            cwd=self.state_dir,
            env=_server_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def _prepare_state_dir(self) -> None:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        # Local connections are trusted, so only the server's user (and root) may reach the socket.
        self.socket_dir.chmod(0o700)
        if os.geteuid() != 0:
            return
        try:
            user = pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            raise LocalPostgresError(f"there is no `{SYSTEM_USER}` system user: run {INSTALL}") from None
        for path in (self.state_dir, self.socket_dir):
            os.chown(path, user.pw_uid, user.pw_gid)
        probe = self._run_as_server_user(["test", "-w", str(self.state_dir), "-a", "-x", str(self.state_dir)], 10)
        if probe.returncode != 0:
            raise LocalPostgresError(
                f"the `{SYSTEM_USER}` user cannot write to {self.state_dir}: every parent directory must be "
                "searchable by it (pytest's tmp dirs are private to root); use a directory from tempfile.mkdtemp()"
            )

    def _initdb(self) -> None:
        cmd = [str(self._bin / "initdb"), "-D", str(self.data_dir), "-U", SYSTEM_USER]
        cmd += ["--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync"]
        done = self._run_as_server_user(cmd, timeout=120)
        if done.returncode != 0:
            raise LocalPostgresError(f"initdb failed (exit {done.returncode}):\n{_tail(done.stdout + done.stderr)}")

    def _launch_until_ready(self) -> None:
        fixed_port = self._fixed_port
        for attempt in range(1, _START_ATTEMPTS + 1):
            self.port = fixed_port or free_port()
            socket_path = self.socket_dir / f".s.PGSQL.{self.port}"
            if len(str(socket_path)) > _SOCKET_PATH_MAX:
                raise LocalPostgresError(f"the socket path {socket_path} is too long: use a shorter state dir")
            offset = self._launch()
            try:
                self._wait_until_ready(offset)
                return
            except LocalPostgresError:
                self.stop()
                # Another process may take the port between our check and the server's bind: pick again.
                if fixed_port or attempt == _START_ATTEMPTS or _PORT_CLASH not in self._log_since(offset):
                    raise

    def _launch(self) -> int:
        cmd = [str(self._bin / "postgres"), "-D", str(self.data_dir)]
        settings = {**_SETTINGS, "port": self.port, "unix_socket_directories": self.socket_dir}
        for name, value in settings.items():
            cmd += ["-c", f"{name}={value}"]
        with open(self.log_path, "ab") as log:
            offset = log.tell()
            self._proc = subprocess.Popen(
                self._server_user_cmd(cmd),
                cwd=self.state_dir,
                env=_server_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return offset

    def _log_since(self, offset: int) -> str:
        with open(self.log_path, "rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def _wait_until_ready(self, offset: int, poll_interval: float = 0.05) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while not self._accepts_connections():
            if self._proc.poll() is not None:
                raise self._startup_error(offset, f"exited during startup (exit {self._proc.returncode})")
            if time.monotonic() > deadline:
                raise self._startup_error(offset, f"accepted no connection within {self.startup_timeout:.0f}s")
            time.sleep(poll_interval)
        self.pid = self._postmaster_pid_from_file()
        if self.pid is None:
            raise self._startup_error(offset, "answers, but its postmaster.pid names no process of ours")

    def _accepts_connections(self) -> bool:
        try:
            self._admin_connect(connect_timeout=2).close()
        except psycopg2.OperationalError:
            return False
        return True

    def _startup_error(self, offset: int, what: str) -> LocalPostgresError:
        log = _tail(self._log_since(offset))
        return LocalPostgresError(f"postgres on port {self.port} {what}\n--- tail of {self.log_path} ---\n{log}")

    def _postmaster_pid_from_file(self) -> int | None:
        """The live postmaster of `data_dir`, if any; once we launched one, only if it is ours."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, ValueError):
            return None
        if not pid_alive(pid) or str(self.data_dir).encode() not in cmdline:  # a recycled pid
            return None
        if self._proc is not None and self._proc.pid not in (pid, _ppid(pid)):
            return None
        return pid

    def _admin_connect(self, dbname: str = "postgres", connect_timeout: int = 10):
        """A superuser connection over the unix socket, in autocommit mode."""
        conn = psycopg2.connect(
            host=str(self.socket_dir), port=self.port, user=SYSTEM_USER, dbname=dbname, connect_timeout=connect_timeout
        )
        conn.autocommit = True
        return conn

    def _bootstrap(self) -> None:
        with closing(self._admin_connect()) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(ROLE)), (PASSWORD,))
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            exists = cur.fetchone() is not None
        if not exists:
            self.create_database(DATABASE)

    def create_database(self, name: str) -> str:
        """Create an empty database `name` owned by the `ingestion` role; return its SQLAlchemy URL."""
        with closing(self._admin_connect()) as conn, conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(ROLE)))
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop database `name` if it exists, disconnecting whoever is still connected to it."""
        with closing(self._admin_connect()) as conn, conn.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def stop(self, timeout: float = 10.0) -> None:
        """`pg_ctl stop -m fast`, wait up to `timeout` seconds, then SIGKILL the postmaster and its children."""
        proc = self._proc
        if proc is None:
            return
        pid = self.pid or self._postmaster_pid_from_file()
        if pid is not None and pid_alive(pid):
            cmd = [str(self._bin / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast", "-w"]
            with suppress(subprocess.TimeoutExpired):  # the SIGKILL below settles it
                self._run_as_server_user([*cmd, "-t", str(max(1, round(timeout)))], timeout=timeout + 5)
            if pid_alive(pid):
                _kill_with_children(pid)
                if proc.pid != pid:  # runuser stops itself while its child is stopped: let it see the death
                    os.kill(proc.pid, signal.SIGCONT)
        try:  # reaps the postmaster (or runuser, which reaped it), so no zombie is left behind
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # runuser whose postgres never wrote postmaster.pid
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        self._proc, self.pid = None, None

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _server_env() -> dict[str, str]:
    # PG* variables (PGDATA, PGPORT, PGOPTIONS...) of the caller would redirect or reconfigure our tools.
    env = {name: value for name, value in os.environ.items() if not name.startswith("PG")}
    return {**env, "LC_ALL": "C"}


def _kill_with_children(pid: int, grace: float = 5.0) -> None:
    """SIGKILL a postmaster and its backends: once it is dead they are no longer its children."""
    pids = [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]
    victims = [pid, *(child for child in pids if _ppid(child) == pid)]
    for victim in victims:
        with suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + grace
    while any(pid_alive(victim) for victim in victims) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = [victim for victim in victims if pid_alive(victim)]
    if survivors:
        raise LocalPostgresError(f"postgres processes {survivors} survived SIGKILL")
