"""PruningSpec: how many filters every channel group keeps, stored as JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iaprune.errors import IAPruneError
from iaprune.fileio import write_json
from iaprune.formats import current, migrate, stamp


@dataclass(frozen=True)
class PruningSpec:
    """Kept filter count per channel group, with the original widths for reference.

    ``kept_indices`` (optional) records which filters of the original model survived;
    a spec without indices still rebuilds the pruned architecture exactly, because
    weights are loaded afterwards.
    """

    keep: dict[str, int]
    original: dict[str, int]
    kept_indices: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.keep) - set(self.original)
        if unknown:
            raise IAPruneError(f"spec keeps unknown channel groups: {sorted(unknown)}")
        for name, k in self.keep.items():
            if not 1 <= k <= self.original[name]:
                raise IAPruneError(f"group {name!r}: keep {k} outside 1..{self.original[name]}")

    def ratios(self) -> dict[str, float]:
        """Kept fraction per group."""
        return {n: self.keep.get(n, c) / c for n, c in self.original.items()}

    def channels(self) -> dict[str, list[int]]:
        """``{group: [original, kept]}`` as written to report.json."""
        return {n: [c, self.keep.get(n, c)] for n, c in self.original.items()}

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dictionary."""
        return {"keep": self.keep, "original": self.original, "kept_indices": self.kept_indices}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PruningSpec:
        """Inverse of :meth:`to_dict`; also a spec file's object (``formats.current``)."""
        data = current(data, where="pruning spec")
        try:
            return cls(
                keep={str(k): int(v) for k, v in dict(data["keep"]).items()},
                original={str(k): int(v) for k, v in dict(data["original"]).items()},
                kept_indices={
                    str(k): [int(i) for i in v]
                    for k, v in dict(data.get("kept_indices") or {}).items()
                },
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IAPruneError(f"malformed pruning spec: {exc}") from exc

    def save(self, path: str | Path) -> None:
        """Write the spec as indented JSON, atomically (a link at ``path`` is replaced).

        The file carries this iaprune's ``format_version`` (:mod:`iaprune.formats`).
        """
        write_json(path, stamp(self.to_dict()), what="pruning spec")

    @classmethod
    def load(cls, path: str | Path) -> PruningSpec:
        """Read a spec written by :meth:`save` (of this or an older format)."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise IAPruneError(f"cannot read pruning spec {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise IAPruneError(f"malformed pruning spec {path}: not a JSON object")
        return cls.from_dict(migrate(data, where=f"pruning spec {path}"))
