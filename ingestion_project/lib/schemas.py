"""The schema of a document version, as bronze holds it: a fingerprint, and the change against an earlier one."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

Columns = Sequence[dict[str, str]]  # [{"name": ..., "type": ...}], in the document's order


def fingerprint(columns: Columns) -> str:
    """sha256 of the columns' names and types, in order."""
    canonical = json.dumps([[c["name"], c["type"]] for c in columns], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class SchemaChange:
    """What changed from one schema to the next; ``first`` when there was none before."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    retyped: list[dict[str, str]] = field(default_factory=list)  # {"name", "from", "to"}
    first: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.retyped)

    def describe(self) -> str:
        """One line for people, e.g. ``+tip; -currency; amount: double → string``."""
        if self.first:
            return "first schema of the source"
        parts = [f"+{name}" for name in self.added] + [f"-{name}" for name in self.removed]
        parts += [f"{r['name']}: {r['from']} → {r['to']}" for r in self.retyped]
        return "; ".join(parts) or "unchanged"


def diff(previous: Columns | None, current: Columns) -> SchemaChange:
    """The change from ``previous`` (None: the source had no schema yet) to ``current``, by column name."""
    if previous is None:
        return SchemaChange(first=True)
    before = {c["name"]: c["type"] for c in previous}
    after = {c["name"]: c["type"] for c in current}
    return SchemaChange(
        added=[name for name in after if name not in before],
        removed=[name for name in before if name not in after],
        retyped=[
            {"name": name, "from": before[name], "to": kind}
            for name, kind in after.items()
            if name in before and before[name] != kind
        ],
    )
