"""One row of a latency table: the measured width grid of one layer and its lookup."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from iaprune.cost.lut.grid import segment

__all__ = ["LayerEntry", "LayerKind"]

LayerKind = Literal["conv", "depthwise", "linear", "fixed"]
"""How a layer's widths follow the channel groups (see :class:`LayerEntry`)."""


@dataclass(frozen=True)
class LayerEntry:
    """Measured latencies of one layer (conv [+ BN [+ activation]] or linear).

    Attributes:
        name: the layer's module name (``name#k`` for the k-th distinct input shape
            of a module called with several shapes).
        kind: ``conv``, ``depthwise`` (one width: ``in == out == groups``), ``linear``
            or ``fixed`` (timed at full width only).
        ops: module classes timed together, e.g. ``["Conv2d", "BatchNorm2d", "ReLU"]``.
        input_shape: per-sample input shape the layer sees in the unpruned model.
        in_full: input width (channels / features) in the unpruned model.
        out_full: output width in the unpruned model.
        out_group: channel group whose ``convs`` contain the layer (its output width),
            or ``None`` when its output is never pruned.
        in_groups: channel groups whose ``consumers`` contain the layer.
        in_fixed: input channels no group covers (e.g. image channels).
        in_mult: input features per kept channel (``H*W`` for a linear after a
            flatten, else 1); ``in = in_fixed + in_mult * sum(keep[g] for g in in_groups)``.
        in_grid: input widths measured (one point when the input width never changes).
        out_grid: output widths measured (for ``depthwise``: the widths).
        ms: ``ms[i][j]`` = median latency in milliseconds at ``(in_grid[i], out_grid[j])``.
        calls: how many times the layer runs per forward pass with this input shape.
        macs_full: multiply-accumulates of one call at full width for one sample (0 when
            unknown: tables written before it was recorded).
    """

    name: str
    kind: LayerKind
    ops: tuple[str, ...]
    input_shape: tuple[int, ...]
    in_full: int
    out_full: int
    out_group: str | None
    in_groups: tuple[str, ...]
    in_fixed: int
    in_mult: int
    in_grid: tuple[int, ...]
    out_grid: tuple[int, ...]
    ms: tuple[tuple[float, ...], ...]
    calls: int = 1
    macs_full: int = 0

    def widths(self, keep: Mapping[str, int]) -> tuple[int, int]:
        """``(in, out)`` width of this layer when every group ``g`` keeps ``keep[g]``.

        Groups missing from ``keep`` are at full width. For ``depthwise`` both are the
        single width; for ``fixed`` both are the full widths.
        """
        if self.kind == "fixed":
            return self.in_full, self.out_full
        out = self.out_full if self.out_group is None else int(keep[self.out_group])
        if self.kind == "depthwise":
            return out, out
        cin = self.in_fixed + self.in_mult * sum(int(keep[g]) for g in self.in_groups)
        return cin, out

    def lookup(self, cin: float, cout: float) -> float:
        """Bilinearly interpolated latency (ms) of one call at ``(cin, cout)``, >= 0.

        Exact at grid points; linear extrapolation outside the grid. ``cin`` is
        ignored for ``depthwise`` layers.
        """
        i0, i1, wi = segment(self.in_grid, cin)
        j0, j1, wj = segment(self.out_grid, cout)
        m = self.ms
        if wi == 0.0 and wj == 0.0:
            return m[i0][j0]
        low = (1.0 - wj) * m[i0][j0] + wj * m[i0][j1]
        high = (1.0 - wj) * m[i1][j0] + wj * m[i1][j1]
        return max(0.0, (1.0 - wi) * low + wi * high)

    def latency(self, keep: Mapping[str, int]) -> float:
        """Latency (ms) of all ``calls`` of this layer for group widths ``keep``."""
        cin, cout = self.widths(keep)
        return self.calls * self.lookup(cin, cout)

    def macs(self, keep: Mapping[str, int]) -> float:
        """Multiply-accumulates (one sample) of all ``calls`` for group widths ``keep``.

        MACs of a conv or linear layer are proportional to ``in * out`` (depthwise: to
        the single width), so they follow from :attr:`macs_full` without the module.
        """
        if self.macs_full == 0:
            return 0.0
        cin, cout = self.widths(keep)
        share = cout / self.out_full
        if self.kind != "depthwise":
            share *= cin / self.in_full
        return self.calls * self.macs_full * share

    @property
    def points(self) -> int:
        """Number of measured grid points."""
        return len(self.in_grid) * len(self.out_grid)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; inverse of :meth:`from_dict`."""
        return {
            "name": self.name,
            "kind": self.kind,
            "ops": list(self.ops),
            "input_shape": list(self.input_shape),
            "in_full": self.in_full,
            "out_full": self.out_full,
            "out_group": self.out_group,
            "in_groups": list(self.in_groups),
            "in_fixed": self.in_fixed,
            "in_mult": self.in_mult,
            "in_grid": list(self.in_grid),
            "out_grid": list(self.out_grid),
            "ms": [list(row) for row in self.ms],
            "calls": self.calls,
            "macs_full": self.macs_full,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LayerEntry:
        """Rebuild an entry written by :meth:`to_dict`; checks the grid shape."""
        entry = cls(
            name=str(data["name"]),
            kind=data["kind"],
            ops=tuple(str(o) for o in data["ops"]),
            input_shape=tuple(int(d) for d in data["input_shape"]),
            in_full=int(data["in_full"]),
            out_full=int(data["out_full"]),
            out_group=None if data["out_group"] is None else str(data["out_group"]),
            in_groups=tuple(str(g) for g in data["in_groups"]),
            in_fixed=int(data["in_fixed"]),
            in_mult=int(data["in_mult"]),
            in_grid=tuple(int(v) for v in data["in_grid"]),
            out_grid=tuple(int(v) for v in data["out_grid"]),
            ms=tuple(tuple(float(v) for v in row) for row in data["ms"]),
            calls=int(data.get("calls", 1)),
            macs_full=int(data.get("macs_full", 0)),
        )
        if entry.kind not in ("conv", "depthwise", "linear", "fixed"):
            raise ValueError(f"layer {entry.name}: unknown kind {entry.kind!r}")
        if len(entry.ms) != len(entry.in_grid) or any(
            len(row) != len(entry.out_grid) for row in entry.ms
        ):
            raise ValueError(f"layer {entry.name}: latency grid does not match its widths")
        if list(entry.in_grid) != sorted(set(entry.in_grid)) or list(entry.out_grid) != sorted(
            set(entry.out_grid)
        ):
            raise ValueError(f"layer {entry.name}: grid widths must be strictly increasing")
        return entry
