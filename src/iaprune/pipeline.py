"""The end-to-end pipeline: baseline -> search -> prune best -> fine-tune -> test -> report.

Every stage sequence of a command runs here, on a :class:`~iaprune.session.Session` (which
checks every input before any work and writes each stage's artefact when it is complete):
:func:`run_prune` (``iaprune prune``) chains them all, :func:`run_search_stages`
(``iaprune search``) stops after the search and :func:`run_finetune` (``iaprune
finetune``) continues a searched run; ``--resume`` skips finished stages.
:func:`write_report` tests both models once on the test split, measures their costs and
writes ``report.json`` (and HTML/Markdown).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from torch import nn

from iaprune.artefacts import finetune_done, restore_finetune_files
from iaprune.config import RunConfig
from iaprune.cost import CostReport, Interval, measure_cost
from iaprune.errors import IAPruneError
from iaprune.rundir import RunDir
from iaprune.search import SearchResult
from iaprune.session import Session
from iaprune.train import distributed

__all__ = [
    "RunConfig",
    "SearchRun",
    "Session",
    "load_pruned",
    "pick_trial",
    "run_finetune",
    "run_prune",
    "run_search_stages",
    "write_report",
]

log = logging.getLogger(__name__)

REPORT_TIMING_SECONDS = 10.0
"""Wall-time limit of the report's interleaved latency comparison (after 5 rounds)."""


def run_prune(
    run_dir: str | Path,
    config: RunConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    trust_code: bool = False,
    explicit: Collection[str] | None = None,
) -> dict[str, Any]:
    """The whole pipeline; returns the report dictionary (also written to report.json).

    On ``resume`` finished stages are skipped; a finished run resumed unchanged rewrites
    nothing and returns its report.
    """
    t0 = time.perf_counter()
    if distributed.from_env().active:
        raise IAPruneError(
            "iaprune prune does not run under torchrun: run `torchrun ... iaprune search` "
            "(data-parallel baseline; --workers N for parallel trials), then "
            "`torchrun ... iaprune finetune RUN_DIR`"
        )
    session = Session.create(
        run_dir,
        config,
        resume=resume,
        overwrite=overwrite,
        trust_code=trust_code,
        explicit=explicit,
    )
    base = session.baseline()
    result = session.search_done() if resume else None
    searched = result is None
    if result is None:
        result = session.search(base, resume=resume)
        if result is None:  # joined another process's study as a worker
            return {"worker": True, "study": session.config.search.study_name}
    else:
        log.info("stage search: finished (%d trials), skipped", result.trials)
    finetuned = resume and finetune_done(session.run, result.spec, session.config.finetune)
    if finetuned:
        restore_finetune_files(session.run)
        report = None if searched else finished_report(session.run.root)
        if report is not None:
            log.info("every stage is finished; nothing to do")
            return report
        log.info("stage finetune: finished, skipped")
        pruned = session.load_pruned()
    else:
        pruned, history = session.prune_and_finetune(base, result.spec)
        session.run.write_json("finetune.json", history)
    return write_report(session, result, base, pruned, seconds=time.perf_counter() - t0)


@dataclass(frozen=True)
class SearchRun:
    """What :func:`run_search_stages` did: the result, or None with the reason.

    ``result`` is None when this process joined another process's study as a worker
    (``joined``) or is a torchrun rank other than 0 (which trains the baseline only).
    """

    result: SearchResult | None
    study: str
    joined: bool = False


def run_search_stages(
    run_dir: str | Path,
    config: RunConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    trust_code: bool = False,
    explicit: Collection[str] | None = None,
) -> SearchRun:
    """Baseline (if needed) and the search only; writes search.json and spec.json.

    Under torchrun every rank trains the baseline data-parallel and rank 0 alone searches.
    On ``resume`` a finished search (with enough trials) is not run again.
    """
    session = Session.create(
        run_dir,
        config,
        resume=resume,
        overwrite=overwrite,
        trust_code=trust_code,
        explicit=explicit,
    )
    base = session.baseline()
    study = session.config.search.study_name
    if not session.dist.main:
        return SearchRun(None, study)
    result = (session.search_done() if resume else None) or session.search(base, resume=resume)
    return SearchRun(result, study, joined=result is None)


def pick_trial(
    result: SearchResult, number: int, session: Session, base: nn.Module
) -> SearchResult:
    """``result`` re-pointed at trial ``number`` (its kept widths, scores from ``base``)."""
    row = next((h for h in result.history if h["number"] == number), None)
    if row is None:
        valid = ", ".join(str(h["number"]) for h in result.history)
        raise IAPruneError(f"trial {number} did not finish in this run; finished: {valid}")
    return replace(
        result,
        spec=session.pruner(base).spec(row["keep"]),
        best_trial=number,
        best_value=row["value"],
        accuracy=row["accuracy"],
        ratios=row["ratios"],
    )


def run_finetune(
    run_dir: str | Path,
    *,
    trial: int | None = None,
    epochs: int | None = None,
    sync_bn: bool | None = None,
    trust_code: bool = False,
) -> dict[str, Any] | None:
    """Fine-tune a searched run and write report.json; returns the report.

    ``trial``: fine-tune that trial's widths instead of the chosen ones (e.g. a Pareto
    point); ``epochs`` and ``sync_bn`` override the run's fine-tuning settings. pruned.pt
    is replaced only when fine-tuning ends, and a pruned.pt that is already a finished
    fine-tune of the configuration with these settings (a run killed while it reported)
    is reported, not trained again. Under torchrun the fine-tuning is data-parallel and rank 0 alone
    writes pruned.pt and the report; the other ranks return None.
    """
    t0 = time.perf_counter()
    session = Session.open(run_dir, trust_code=trust_code, lock=True)
    given: dict[str, Any] = {"epochs": epochs, "sync_bn": sync_bn}
    overrides = {k: v for k, v in given.items() if v is not None}
    if overrides:
        session.config = replace(
            session.config, finetune=replace(session.config.finetune, **overrides)
        )
    result = SearchResult.load(session.run)
    base = session.finished_baseline_model()  # never trains: the search needed it finished
    if trial is not None:
        result = pick_trial(result, trial, session, base)
    if finetune_done(session.run, result.spec, session.config.finetune):  # never redone
        log.info(
            "stage finetune: pruned.pt is a finished fine-tune of this configuration with "
            "these settings; not training again (--epochs or --trial trains another)"
        )
        if not session.dist.main:
            return None
        restore_finetune_files(session.run)
        pruned = session.load_pruned()
    else:
        pruned, history = session.prune_and_finetune(base, result.spec)
        if not session.dist.main:  # under torchrun rank 0 alone tests and reports
            return None
        session.run.write_json("finetune.json", history)
    return write_report(session, result, base, pruned, seconds=time.perf_counter() - t0)


def finished_report(run_dir: Path) -> dict[str, Any] | None:
    """The run's report.json when it holds a report; None when missing or corrupt (rebuild)."""
    path = run_dir / "report.json"
    if not path.is_file():
        return None
    try:
        report = RunDir(run_dir).read_dict("report.json")
    except IAPruneError:
        report = {}
    if not {"baseline", "pruned"} <= set(report):
        log.warning("%s is corrupt: rebuilding it", path)
        return None
    return report


def write_report(
    session: Session, result: SearchResult, base: nn.Module, pruned: nn.Module, *, seconds: float
) -> dict[str, Any]:
    """Test both models, measure their costs, write report.json/html/md.

    Latency is timed A/B: both models interleaved in this process
    (:func:`iaprune.cost.compare_latency`), so the report states the latency ratio with
    its confidence interval, flags an interval wider than +-5 %, and checks a latency
    budget against the upper bound of the pruned model's interval.
    """
    from iaprune.reports import build_report

    log.info("stage report: testing and measuring both models")
    base_cost, pruned_cost, check = compare_costs(session, base, pruned)
    report = build_report(
        session.config,
        result,
        run_dir=session.run.root,
        round_to=session.round_to,
        base_test=session.test(base),
        base_cost=base_cost,
        pruned_test=session.test(pruned),
        pruned_cost=pruned_cost,
        seconds=seconds,
        latency_check=check.to_dict(),
    )
    session.run.write_json("report.json", report)
    _write_report_files(session.run.root)
    return report


@dataclass
class LatencyCheck:
    """The report's A/B latency check (``report.json``'s ``latency_check``).

    The latency ratio pruned / baseline and both latencies with their intervals, the
    rounds timed, the tolerance and the models whose interval is wider than it; with a
    ``--max-latency`` (``budget_ratio``) or ``--max-latency-ms`` (``budget_ms``) budget,
    whether the pruned model's upper bound meets every one (``meets_budget``).
    """

    ratio: Interval
    pruned_ms: Interval
    baseline_ms: Interval
    rounds: int
    tolerance: float
    flagged: list[str]
    budget_ratio: float | None = None
    budget_ms: float | None = None
    meets_budget: bool | None = None

    def check_budget(self, name: str, budget: float, measured: Interval, flag: str) -> None:
        """Record whether ``measured``'s upper bound meets ``budget``; warn if not."""
        setattr(self, name, budget)
        met = measured.high <= budget
        self.meets_budget = (True if self.meets_budget is None else self.meets_budget) and met
        if not met:
            log.warning(
                "the pruned model is OVER its latency budget: it measures %.4g [%.4g, %.4g] "
                "here, above --max-latency%s %g",
                measured.value,
                measured.low,
                measured.high,
                flag,
                budget,
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, in report.json's key order."""
        out: dict[str, Any] = {
            "ratio": self.ratio.to_dict(),
            "pruned_ms": self.pruned_ms.to_dict(),
            "baseline_ms": self.baseline_ms.to_dict(),
            "rounds": self.rounds,
            "tolerance": self.tolerance,
            "flagged": self.flagged,
        }
        for name in ("budget_ratio", "budget_ms"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
                out["meets_budget"] = self.meets_budget
        return out


def compare_costs(
    session: Session, base: nn.Module, pruned: nn.Module
) -> tuple[CostReport, CostReport, LatencyCheck]:
    """Static costs of both models and their interleaved latency comparison.

    Returns the two cost reports (latency = geometric mean of the per-round medians,
    spread = width of its interval) and the check written to ``report.json``:
    latency ratio with its interval, whether an interval is wider than the
    tolerance, and for a ``--max-latency`` (ratio) or ``--max-latency-ms`` budget whether
    the pruned model's upper bound meets it.
    """
    from iaprune.cost import CompareSettings, compare_latency

    cmp = compare_latency(
        {"baseline": base, "pruned": pruned},
        session.input_shape,
        session.config.cost,
        CompareSettings(max_seconds=REPORT_TIMING_SECONDS),
    )
    costs = []
    for name, model in (("baseline", base), ("pruned", pruned)):
        static = measure_cost(model, session.input_shape)
        lat = cmp.latency[name]
        costs.append(
            replace(
                static,
                latency_ms=lat.value,
                latency_spread_ms=lat.high - lat.low,
                latency_env={
                    **cmp.env,
                    "statistic": "geometric mean of round medians",
                    "spread": "width of the 95 % interval",
                },
            )
        )
    ratio, pruned_ms = cmp.ratios["pruned"], cmp.latency["pruned"]
    check = LatencyCheck(
        ratio,
        pruned_ms,
        cmp.latency["baseline"],
        cmp.rounds,
        cmp.settings.tolerance,
        cmp.flagged(),
    )
    objective = session.config.search.objective
    if objective.max_latency is not None:
        check.check_budget("budget_ratio", objective.max_latency, ratio, "")
    if objective.max_latency_ms is not None:
        check.check_budget("budget_ms", objective.max_latency_ms, pruned_ms, "-ms")
    for name in check.flagged:
        log.warning(
            "latency of %s varied by more than +-%.0f %% between rounds (busy machine?)",
            name,
            100 * cmp.settings.tolerance,
        )
    return costs[0], costs[1], check


def _write_report_files(run_dir: Path) -> None:
    """report.html / report.md next to report.json; a failure here loses nothing finished."""
    from iaprune.reports.render import write_reports

    try:
        write_reports(run_dir)
    except Exception as exc:  # plotting must never cost the user a finished run
        log.warning("report.html/report.md not written (%s); retry with `iaprune report`", exc)


def load_pruned(run_dir: str | Path, *, trust_code: bool = False) -> nn.Module:
    """Rebuild and load the pruned model of a finished run directory.

    A run whose model is a user factory or a pickled file needs ``trust_code=True``.
    """
    return Session.open(run_dir, trust_code=trust_code).load_pruned()
