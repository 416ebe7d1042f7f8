"""A memory budget for the documents of one run, shared out by reservation and watched by resident size.

No address-space limit: it counts reserved, never-touched memory (thread stacks, allocator arenas), so it failed
ordinary documents and could abort the process where an allocation cannot fail softly. Instead each document
reserves an estimate before it is parsed and waits while the reservations would exceed the budget (one larger
than the whole budget runs alone). At every batch it parses the document checks in (``checkpoint``): a batch that
needs more than its reservation grows it, or, when that does not fit, fails this document alone. A watchdog
thread samples the process's resident size; past the budget it cancels the document holding the largest
reservation. A failed or cancelled document raises ResourceError (failure class ``resource``): it is retried in a
run by itself. The budget is enforced at batch boundaries, so one batch can overshoot it before it is refused.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from ingestion_project.lib.errors import ResourceError

_MIB = 2**20
# Parsing one ordinary document needs about this much besides its batches (readers, the Parquet writer's row
# group, the upload): a 15 MB CSV peaks at ~126 MiB (``make bench``). Below it no run can work at all.
MIN_DOCUMENT_BYTES = 64 * _MIB
# The listed size counts this many times over in a document's estimate, up to a cap: parsing streams.
SIZE_FACTOR = 4
MAX_ESTIMATE_BYTES = 512 * _MIB
# A batch is held twice at most (as parsed and as typed for bronze), beside the writer's row group.
BATCH_COPIES = 2
WORKING_BYTES = 32 * _MIB
WATCH_SECONDS = 0.05
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_current = threading.local()


def resident_bytes() -> int | None:
    """This process's resident size in bytes, or None where /proc does not tell."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * _PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return None


def estimate(size: int | None) -> int:
    """What a document of ``size`` listed bytes is expected to need while it is parsed."""
    return min(MAX_ESTIMATE_BYTES, MIN_DOCUMENT_BYTES + SIZE_FACTOR * (size or 0))


def check_budget(budget: int | None) -> None:
    """Raise ValueError, saying why, when ``budget`` is too small for a run to parse even one ordinary document."""
    if budget is not None and budget < MIN_DOCUMENT_BYTES:
        raise ValueError(
            f"run_memory_limit is {budget / _MIB:,.0f} MiB, below the {MIN_DOCUMENT_BYTES // _MIB} MiB one document "
            "needs to be parsed: no document could land. Raise run_memory_limit (or set it to null for no budget)."
        )


@dataclass(eq=False)
class Reservation:
    """One document's share of the budget while it is parsed."""

    label: str
    amount: int
    cancelled: str | None = None  # why the watchdog cancelled it, once it did


class MemoryBudget:
    """The budget of one run: ``budget`` bytes beyond the resident size when it starts; None: no budget."""

    def __init__(self, budget: int | None, watch_seconds: float = WATCH_SECONDS):
        self.budget = budget
        self.watch_seconds = watch_seconds
        self.baseline = resident_bytes()
        self.peak_over_baseline = 0
        self.cancellations = 0
        self._lock = threading.Condition()
        self._active: list[Reservation] = []
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None

    @property
    def enforced(self) -> bool:
        return self.budget is not None and self.baseline is not None

    def __enter__(self) -> MemoryBudget:
        if self.enforced:
            self._watchdog = threading.Thread(target=self._watch, name="memory-watchdog", daemon=True)
            self._watchdog.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._watchdog is not None:
            self._watchdog.join(timeout=10)

    def _reserved(self) -> int:
        return sum(r.amount for r in self._active)

    @contextmanager
    def reserve(self, label: str, size: int | None) -> Iterator[Reservation]:
        """Hold an estimate for one document (on the calling thread) while it is parsed; wait until it fits."""
        if not self.enforced:
            yield Reservation(label, 0)
            return
        assert self.budget is not None
        reservation = Reservation(label, min(estimate(size), self.budget))
        with self._lock:
            self._lock.wait_for(lambda: not self._active or self._reserved() + reservation.amount <= self.budget)
            self._active.append(reservation)
        _current.reservation, _current.budget = reservation, self
        try:
            yield reservation
        finally:
            _current.reservation = _current.budget = None
            with self._lock:
                self._active.remove(reservation)
                self._lock.notify_all()

    def _grow(self, reservation: Reservation, needed: int) -> None:
        assert self.budget is not None
        with self._lock:
            if needed <= reservation.amount:
                return
            mib = needed / _MIB
            if needed > self.budget:
                reservation.cancelled = (
                    f"{reservation.label} needs about {mib:,.0f} MiB at once, more than the run's whole memory "
                    f"budget (run_memory_limit {self.budget / _MIB:,.0f} MiB)"
                )
            elif self._reserved() - reservation.amount + needed > self.budget:
                reservation.cancelled = (
                    f"{reservation.label} needs about {mib:,.0f} MiB at once, more than the run's memory budget "
                    f"(run_memory_limit {self.budget / _MIB:,.0f} MiB) has left beside the other documents"
                )
            else:
                reservation.amount = needed

    def _watch(self) -> None:
        assert self.budget is not None and self.baseline is not None
        while not self._stop.wait(self.watch_seconds):
            over = self._over()
            if over <= 0:
                continue
            pa.default_memory_pool().release_unused()  # freed Arrow memory the allocator kept is not in use
            over = self._over()
            with self._lock:
                if over <= 0 or any(r.cancelled for r in self._active):
                    continue  # a cancelled document is still unwinding: give its memory a chance to go
                if not self._active:
                    continue
                victim = max(self._active, key=lambda r: r.amount)
                victim.cancelled = (
                    f"the run grew {over / _MIB:,.0f} MiB past its memory budget (run_memory_limit "
                    f"{self.budget / _MIB:,.0f} MiB) while parsing {victim.label}, the largest of "
                    f"{len(self._active)} document(s) in flight"
                )
                self.cancellations += 1

    def _over(self) -> int:
        assert self.budget is not None and self.baseline is not None
        resident = resident_bytes() or 0
        self.peak_over_baseline = max(self.peak_over_baseline, resident - self.baseline)
        return resident - self.baseline - self.budget


def checkpoint(batch_bytes: int = 0) -> None:
    """Called by the parse loops at every batch: account for the batch, and stop this document (ResourceError)
    when it does not fit in its share of the budget or the watchdog cancelled it. A no-op outside a budget."""
    reservation: Reservation | None = getattr(_current, "reservation", None)
    if reservation is None:
        return
    if batch_bytes and reservation.cancelled is None:
        _current.budget._grow(reservation, WORKING_BYTES + BATCH_COPIES * batch_bytes)
    if reservation.cancelled is not None:
        raise ResourceError(f"ran out of memory: {reservation.cancelled}; retried in a run by itself")
