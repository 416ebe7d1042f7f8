"""A fault-injecting HTTP proxy on 127.0.0.1 in front of an S3 endpoint, standard library only.

Every request is forwarded as it came — method, path and query, headers including ``Host`` (so SigV4 signatures
made for the proxy's address still verify upstream), body — and the response is streamed back. A thread-safe fault
plan answers chosen requests itself instead::

    with S3FaultProxy(s3_server.endpoint_url) as proxy:
        s3 = boto3.client("s3", endpoint_url=proxy.endpoint_url, ...)
        proxy.slow_down(times=2, method="GET", path="/landing/")  # the next 2 matching requests: 503 SlowDown
        proxy.internal_error()                                    # the next request: 500 InternalError
        proxy.reset_connection(method="PUT")                      # the next PUT: connection reset, no answer
        proxy.delay(2.0, path="orders.csv")                       # the next matching request: forwarded 2 s late
        held = proxy.hold(method="PUT", path="/documents/")        # the next matching request waits for release()
        held.arrived.wait(10); ...; held.release()                 # ... then is forwarded as it came
        with proxy.unreachable():                                  # nothing listens on the port meanwhile
            ...
        proxy.counts().faults, proxy.requests()

Rules are tried in the order they were added; the first one that matches and has requests left is used up by one.
``path`` matches a substring of the request target (path and query), raw or percent-decoded.
"""

from __future__ import annotations

import contextlib
import enum
import http.client
import itertools
import socket
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from urllib.parse import unquote, urlsplit
from xml.sax.saxutils import escape

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",  # already answered with 100 Continue by http.server; SigV4 never signs it
    }
)
_CHUNK = 64 * 1024
_MAX_BODY = 256 * 1024 * 1024
_MAX_CHUNKS = 1_000_000
_LOG_SIZE = 10_000
_JOIN_TIMEOUT = 5.0


class FaultKind(enum.StrEnum):
    """What the proxy does instead of (or before) forwarding a request."""

    SLOW_DOWN = "slow_down"  # 503 with an S3 SlowDown error body
    INTERNAL_ERROR = "internal_error"  # 500 with an S3 InternalError error body
    RESET = "reset"  # close the connection without answering (TCP RST)
    DELAY = "delay"  # wait, then forward as usual
    HOLD = "hold"  # wait until the test releases it (bounded), then forward as usual


_S3_ERRORS = {
    FaultKind.SLOW_DOWN: (503, "Slow Down", "SlowDown", "Please reduce your request rate."),
    FaultKind.INTERNAL_ERROR: (
        500,
        "Internal Server Error",
        "InternalError",
        "We encountered an internal error. Please try again.",
    ),
}


@dataclass(frozen=True)
class SeenRequest:
    """One request the proxy received, and the fault it was answered with (None: forwarded untouched)."""

    method: str
    target: str
    fault: FaultKind | None


@dataclass(frozen=True)
class ProxyCounts:
    """A snapshot of the counters: requests received, requests sent upstream, faults injected per kind."""

    seen: int
    forwarded: int
    injected: Mapping[FaultKind, int]

    @property
    def faults(self) -> int:
        return sum(self.injected.values())


class Hold:
    """A request held by the proxy: ``arrived`` is set once it came in (``target`` is its path and query); it is
    forwarded when ``release()`` is called, or after ``seconds`` at the latest."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.arrived = threading.Event()
        self.released = threading.Event()
        self.forwarded = threading.Event()
        self.target: str | None = None

    def release(self) -> None:
        self.released.set()


@dataclass
class _Rule:
    kind: FaultKind
    remaining: int
    method: str | None
    path: str | None
    seconds: float
    hold: Hold | None = None

    def matches(self, method: str, target: str) -> bool:
        if self.method is not None and method.upper() != self.method:
            return False
        return self.path is None or self.path in target or self.path in unquote(target)


class S3FaultProxy:
    """A loopback HTTP proxy to ``upstream_url`` with a fault plan; start/stop it, or use it as a context manager."""

    def __init__(self, upstream_url: str, *, upstream_timeout: float = 30.0) -> None:
        upstream = urlsplit(upstream_url)
        if upstream.scheme != "http" or not upstream.hostname:
            raise ValueError(f"upstream must be an http:// URL, not {upstream_url!r}")
        self.upstream_host = upstream.hostname
        self.upstream_port = upstream.port or 80
        self.upstream_timeout = upstream_timeout
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._log: deque[SeenRequest] = deque(maxlen=_LOG_SIZE)
        self._seen = 0
        self._forwarded = 0
        self._injected: Counter[FaultKind] = Counter()
        self._request_ids = itertools.count(1)
        self._port: int | None = None
        self._server: _ProxyServer | None = None
        self._serve_thread: threading.Thread | None = None
        self._connections: dict[socket.socket, threading.Thread] = {}
        # Set while nothing listens: wakes delayed requests and turns away connections accepted in the meantime.
        self._down = threading.Event()
        self._down.set()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the proxy has not been started")
        return self._port

    @property
    def endpoint_url(self) -> str:
        """The URL clients use instead of the upstream's, e.g. ``http://127.0.0.1:41234``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> S3FaultProxy:
        """Listen on a free loopback port (the same one again after :meth:`stop`)."""
        if self._server is None:
            self._listen()
        return self

    def stop(self) -> None:
        """Stop listening, drop open connections and wait (bounded) for the threads to end."""
        if self._server is not None:
            self._close()

    def __enter__(self) -> S3FaultProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def go_down(self) -> None:
        """Make the proxy unreachable: stop listening and drop open connections; the port is kept for come_back."""
        self.stop()

    def come_back(self) -> None:
        """Listen again on the same port after :meth:`go_down`."""
        self.start()

    @contextlib.contextmanager
    def unreachable(self) -> Iterator[None]:
        """Unreachable inside the block, back on the same port after it."""
        self.go_down()
        try:
            yield
        finally:
            self.come_back()

    def slow_down(self, times: int = 1, *, method: str | None = None, path: str | None = None) -> None:
        """Answer the next ``times`` matching requests with 503 SlowDown."""
        self._plan(FaultKind.SLOW_DOWN, times, method, path)

    def internal_error(self, times: int = 1, *, method: str | None = None, path: str | None = None) -> None:
        """Answer the next ``times`` matching requests with 500 InternalError."""
        self._plan(FaultKind.INTERNAL_ERROR, times, method, path)

    def reset_connection(self, times: int = 1, *, method: str | None = None, path: str | None = None) -> None:
        """Reset the connection of the next ``times`` matching requests (after reading them) without answering."""
        self._plan(FaultKind.RESET, times, method, path)

    def delay(self, seconds: float, times: int = 1, *, method: str | None = None, path: str | None = None) -> None:
        """Hold the next ``times`` matching requests for ``seconds`` before forwarding them."""
        if not 0 < seconds <= 300:
            raise ValueError("a delay must be between 0 and 300 seconds")
        self._plan(FaultKind.DELAY, times, method, path, seconds)

    def hold(self, *, method: str | None = None, path: str | None = None, seconds: float = 120.0) -> Hold:
        """Hold the next matching request until the returned ``Hold`` is released (at most ``seconds``), then
        forward it: a request in flight for as long as the test needs, e.g. while its client is frozen."""
        if not 0 < seconds <= 300:
            raise ValueError("a hold must be between 0 and 300 seconds")
        hold = Hold(seconds)
        if method is None and path is None:
            raise ValueError("hold what? give a method or a path")
        with self._lock:
            self._rules.append(_Rule(FaultKind.HOLD, 1, method.upper() if method else None, path, seconds, hold))
        return hold

    def clear_faults(self) -> None:
        """Forget every planned fault that has not been used up."""
        with self._lock:
            self._rules.clear()

    def pending_faults(self) -> int:
        """How many planned faults are still waiting for a matching request."""
        with self._lock:
            return sum(rule.remaining for rule in self._rules)

    def counts(self) -> ProxyCounts:
        with self._lock:
            return ProxyCounts(self._seen, self._forwarded, dict(self._injected))

    def requests(self) -> list[SeenRequest]:
        """The requests received so far (the latest 10,000), oldest first."""
        with self._lock:
            return list(self._log)

    def reset_counters(self) -> None:
        with self._lock:
            self._seen = self._forwarded = 0
            self._injected.clear()
            self._log.clear()

    def _plan(self, kind: FaultKind, times: int, method: str | None, path: str | None, seconds: float = 0.0) -> None:
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._rules.append(_Rule(kind, times, method.upper() if method else None, path, seconds))

    def _take(self, method: str, target: str) -> _Rule | None:
        """Record a request and use up the first matching rule, if any."""
        with self._lock:
            self._seen += 1
            rule = next((r for r in self._rules if r.remaining > 0 and r.matches(method, target)), None)
            if rule is not None:
                rule.remaining -= 1
                self._injected[rule.kind] += 1
                if not rule.remaining:
                    self._rules.remove(rule)
            self._log.append(SeenRequest(method, target, rule.kind if rule else None))
            return rule

    def _count_forwarded(self) -> None:
        with self._lock:
            self._forwarded += 1

    def _listen(self) -> None:
        server = _ProxyServer(("127.0.0.1", self._port or 0), self)
        self._port = server.server_address[1]
        self._server = server
        self._down.clear()
        self._serve_thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"s3-fault-proxy-{self._port}",
            daemon=True,
        )
        self._serve_thread.start()

    def _close(self) -> None:
        assert self._server is not None and self._serve_thread is not None
        self._down.set()
        self._server.shutdown()
        self._server.server_close()
        self._serve_thread.join(_JOIN_TIMEOUT)
        self._server = self._serve_thread = None
        with self._lock:
            connections = dict(self._connections)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + _JOIN_TIMEOUT
        for thread in connections.values():
            thread.join(max(0.0, deadline - time.monotonic()))

    def _register(self, sock: socket.socket) -> bool:
        with self._lock:
            if self._down.is_set():
                return False
            self._connections[sock] = threading.current_thread()
            return True

    def _unregister(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections.pop(sock, None)


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # the proxy joins its handler threads itself, with a time limit

    def __init__(self, address: tuple[str, int], proxy: S3FaultProxy) -> None:
        self.proxy = proxy
        super().__init__(address, _ProxyHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, a DNS query a loopback test has no use for.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects
    server: _ProxyServer

    def setup(self) -> None:
        super().setup()
        if not self.server.proxy._register(self.connection):
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.proxy._unregister(self.connection)

    def log_message(self, format: str, *args: object) -> None:
        pass  # the counters and requests() say what happened; stderr noise would not

    def handle_one_request(self) -> None:
        if self.server.proxy._down.is_set():
            self.close_connection = True
            return
        super().handle_one_request()

    def _handle(self) -> None:
        proxy = self.server.proxy
        try:
            body = self._read_body()
        except (OSError, ValueError):
            self.close_connection = True
            return
        rule = proxy._take(self.command, self.path)
        if rule is None:
            self._forward(body)
        elif rule.kind is FaultKind.RESET:
            self._reset()
        elif rule.kind is FaultKind.DELAY:
            if proxy._down.wait(rule.seconds):
                self.close_connection = True  # going down meanwhile: the request is lost, as on a real outage
            else:
                self._forward(body)
        elif rule.kind is FaultKind.HOLD:
            assert rule.hold is not None
            rule.hold.target = self.path
            rule.hold.arrived.set()
            deadline = time.monotonic() + rule.hold.seconds
            while not rule.hold.released.wait(0.05) and not proxy._down.is_set() and time.monotonic() < deadline:
                pass
            if proxy._down.is_set():
                self.close_connection = True
            else:
                self._forward(body)
                rule.hold.forwarded.set()
        else:
            self._send_s3_error(rule.kind)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = do_OPTIONS = _handle

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 <= length <= _MAX_BODY:
            raise ValueError(f"request body of {length} bytes")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        body = bytearray()
        for _ in range(_MAX_CHUNKS):
            line = self.rfile.readline(1024)
            if not line:
                raise ValueError("the request body ended before its last chunk")
            size = int(line.split(b";", 1)[0].strip(), 16)
            if len(body) + size > _MAX_BODY:
                raise ValueError("chunked request body too large")
            if size == 0:
                self._skip_trailers()
                return bytes(body)
            body += self.rfile.read(size)
            self.rfile.readline(16)
        raise ValueError("too many chunks in the request body")

    def _skip_trailers(self) -> None:
        for _ in range(_MAX_CHUNKS):
            if not self.rfile.readline(64 * 1024).strip():
                return
        raise ValueError("too many trailer lines in the request body")

    def _forward(self, body: bytes) -> None:
        proxy = self.server.proxy
        upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=proxy.upstream_timeout)
        try:
            try:
                upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in _HOP_BY_HOP:
                        upstream.putheader(name, value)
                if "Content-Length" not in self.headers and body:
                    upstream.putheader("Content-Length", str(len(body)))  # the body arrived chunked
                upstream.endheaders(body or None)
                proxy._count_forwarded()
                response = upstream.getresponse()
            except (OSError, http.client.HTTPException) as e:
                self._send_plain(502, "Bad Gateway", f"upstream {proxy.upstream_host}:{proxy.upstream_port}: {e}")
                return
            self._relay(response)
        finally:
            upstream.close()

    def _relay(self, response: http.client.HTTPResponse) -> None:
        headers = [(n, v) for n, v in response.getheaders() if n.lower() not in _HOP_BY_HOP]
        has_body = self.command != "HEAD" and response.status not in (204, 304) and response.status >= 200
        chunked = has_body and not any(n.lower() == "content-length" for n, _ in headers)
        try:
            self.send_response_only(response.status, response.reason)
            for name, value in headers:
                self.send_header(name, value)
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if not has_body:
                return
            while data := response.read(_CHUNK):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except (OSError, http.client.HTTPException):
            # Headers are out: the only honest way to report a broken upstream body is a broken connection.
            self.close_connection = True

    def _reset(self) -> None:
        # Linger 0 makes the close send RST instead of FIN: the client sees "connection reset by peer".
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _send_s3_error(self, kind: FaultKind) -> None:
        status, reason, code, message = _S3_ERRORS[kind]
        request_id = f"fault-proxy-{next(self.server.proxy._request_ids)}"
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            f"<Resource>{escape(self.path)}</Resource><RequestId>{request_id}</RequestId></Error>"
        ).encode()
        self._send(status, reason, "application/xml", body, [("x-amz-request-id", request_id)])

    def _send_plain(self, status: int, reason: str, text: str) -> None:
        self._send(status, reason, "text/plain; charset=utf-8", text.encode(), [])

    def _send(self, status: int, reason: str, content_type: str, body: bytes, extra: list[tuple[str, str]]) -> None:
        try:
            self.send_response_only(status, reason)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in extra:
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            self.close_connection = True
