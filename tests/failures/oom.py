"""The kernel's OOM killer for one worker process, where the test cannot give the worker a memory cgroup of its own.

A memory cgroup's OOM killer sends SIGKILL to the process once its resident memory passes the group's limit; this
does the same from a thread of the test, reading the worker's resident size from /proc every few milliseconds. The
worker gets no warning and no chance to clean up, as under the kernel's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
POLL_SECONDS = 0.005


def resident_bytes(pid: int) -> int | None:
    """The resident size of process ``pid``; None once it is gone."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return None


class OomKiller:
    """Kills ``process`` with SIGKILL once its resident size passes ``limit_bytes``; ``killed`` says whether it did."""

    def __init__(self, process: subprocess.Popen, limit_bytes: int):
        self.process = process
        self.limit_bytes = limit_bytes
        self.killed = False
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="oom-killer", daemon=True)

    def _watch(self) -> None:
        # Bounded by the process: the loop ends when it exits (or is killed here) or when the test stops watching.
        while not self._stop.is_set() and self.process.poll() is None:
            rss = resident_bytes(self.process.pid)
            if rss is None:
                return
            self.peak_bytes = max(self.peak_bytes, rss)
            if rss > self.limit_bytes:
                self.process.send_signal(signal.SIGKILL)
                self.killed = True
                return
            self._stop.wait(POLL_SECONDS)


@contextmanager
def oom_killer(process: subprocess.Popen, limit_bytes: int) -> Iterator[OomKiller]:
    killer = OomKiller(process, limit_bytes)
    killer._thread.start()
    try:
        yield killer
    finally:
        killer._stop.set()
        killer._thread.join(timeout=10)
