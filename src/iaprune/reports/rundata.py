"""The artefacts of a finished run that a report shows (:class:`RunData`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iaprune.errors import IAPruneError
from iaprune.pareto import TrialPoint
from iaprune.reports.formats import _is_number
from iaprune.rundir import RunDir


@dataclass(frozen=True)
class RunData:
    """The artefacts of a finished run that a report shows.

    ``history`` holds search.json's trial rows (``number``, ``value``, ``accuracy``,
    ``ratios``, ``latency_ms``, ``feasible``, ``keep``, ``warm_start``), ``failed`` the
    numbers of its failed trials, ``epochs`` finetune.json's rows (``epoch``,
    ``train_loss``, ``val_top1``, ``val_loss``); all are empty when the file is absent.
    """

    root: Path
    report: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)

    @classmethod
    def load(cls, run_dir: str | Path) -> RunData:
        """Read a run directory; one without config.json or report.json is refused."""
        run = RunDir.existing(run_dir)
        if not (run / "report.json").is_file():
            raise IAPruneError(
                f"{run.root} has no report.json: the run has not finished (iaprune prune "
                "--resume or iaprune finetune completes it)"
            )
        report = run.read_json("report.json")
        if not isinstance(report, dict) or not {"baseline", "pruned"} <= set(report):
            raise IAPruneError(f"{run / 'report.json'} is not an iaprune report")
        history: list[dict[str, Any]] = []
        failed: list[int] = []
        if (run / "search.json").is_file():
            search = run.read_dict("search.json")
            history = list(search.get("history") or [])
            failed = [int(n) for n in search.get("failed_numbers") or [] if _is_number(n)]
        epochs: list[dict[str, Any]] = []
        if (run / "finetune.json").is_file():
            epochs = list(run.read_dict("finetune.json").get("epochs") or [])
        return cls(root=run.root, report=report, history=history, epochs=epochs, failed=failed)

    @property
    def best_trial(self) -> int | None:
        """Number of the trial whose configuration was pruned and fine-tuned."""
        best = self.report.get("search", {}).get("best_trial")
        return best if isinstance(best, int) else None

    @property
    def objective(self) -> str:
        """The search objective kind (``constrained``, ``weighted``, ``pareto``)."""
        return str(self.report.get("search", {}).get("objective", "constrained"))

    @property
    def budgets(self) -> dict[str, float]:
        """The search budgets, e.g. ``{"macs": 0.5, "latency_ms": 2.0}``."""
        return dict(self.report.get("search", {}).get("budgets") or {})

    def trial_points(self, cost: str) -> list[TrialPoint]:
        """Trials with a validation accuracy and a value for ``cost``.

        ``cost`` is a key of the trials' ``ratios`` (``macs``, ``params``, ...) or
        ``latency_ms`` for the measured latency.
        """
        points = []
        for row in self.history:
            accuracy = row.get("accuracy")
            raw = row.get(cost) if cost == "latency_ms" else (row.get("ratios") or {}).get(cost)
            if _is_number(accuracy) and _is_number(raw) and math.isfinite(raw):
                points.append(
                    TrialPoint(
                        number=int(row["number"]),
                        accuracy=float(accuracy),
                        cost=float(raw),
                        feasible=bool(row.get("feasible", True)),
                    )
                )
        return points
