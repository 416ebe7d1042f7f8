"""A memory budget for the documents of one run, enforced by the kernel through the address-space limit.

Past the budget, allocations fail inside the process instead of the kernel killing it: Python raises MemoryError
and pyarrow ArrowMemoryError (a MemoryError too), which fail the one document that asked for the memory as a
validation error. (Allocations inside C++ standard containers abort instead; the per-source limits are what keep
hostile documents away from those.)
"""

from __future__ import annotations

import re
import resource
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_VM_SIZE = re.compile(r"^VmSize:\s+(\d+) kB$", re.MULTILINE)


def address_space() -> int | None:
    """The process's virtual memory size in bytes, or None where /proc does not tell."""
    try:
        match = _VM_SIZE.search(Path("/proc/self/status").read_text())
    except OSError:
        return None
    return int(match.group(1)) * 1024 if match else None


@contextmanager
def memory_budget(budget: int | None) -> Iterator[None]:
    """Let the process allocate at most ``budget`` more bytes of address space while inside; None: no budget.

    Only the soft limit moves, and it is put back on the way out, so the process (a test, ``dagster dev`` in
    process) is unchanged afterwards. Where the platform does not support it, the budget is not enforced.
    """
    current = address_space()
    if budget is None or current is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    wanted = current + budget
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    if soft != resource.RLIM_INFINITY:
        wanted = min(wanted, soft)
    resource.setrlimit(resource.RLIMIT_AS, (wanted, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
