"""Heartbeat: a claimed lease stays held while its run works, and lapses when the run dies."""

from __future__ import annotations

import threading
from datetime import timedelta

import dagster as dg

from ingestion_project.lib.ledger import Ledger


class Heartbeat:
    """Renews a lease every ``interval`` until stopped, from a daemon thread."""

    def __init__(self, book: Ledger, token: str, lease: timedelta, log: dg.DagsterLogManager):
        self._book, self._token, self._lease, self._log = book, token, lease, log
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)

    def _beat(self) -> None:
        interval = max(self._lease.total_seconds() / 3, 0.5)
        while not self._stop.wait(interval):
            try:
                self._book.renew(self._token, self._lease)
            except Exception as e:  # noqa: BLE001 - a missed beat is survivable; the next one tries again
                self._log.warning(f"lease heartbeat failed: {type(e).__name__}: {e}")

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
