"""The Fashion-MNIST benchmark runs end to end in its ``--smoke`` mode (digits, tiny).

The first run of each script is ``python benchmarks/SCRIPT.py --smoke`` in a subprocess,
as the benchmark is run; the re-runs that check what a script reads back (resume, picks)
call its ``main`` in this process (:func:`_rerun`), which saves an interpreter start each.
"""

from __future__ import annotations

import csv
import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fashion_mnist.py"
FIDELITY = SCRIPT.parent / "proxy_fidelity.py"
METHODS = {"iaprune", "tpe", "random", "eagleeye", "uniform", "tp-global", "tp-isomorphic"}


def _run(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IAPRUNE_NO_PROGRESS": "1"}
    return subprocess.run(
        [sys.executable, str(script), "--smoke", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def _rerun(
    script: Path, *args: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> str:
    """``script --smoke ARGS`` through its ``main`` in this process; returns its stdout.

    The script's folder goes first on ``sys.path`` (it imports ``common`` from there, as
    when run as a script) and torch's thread count, which a row sets, is put back.
    """
    monkeypatch.syspath_prepend(str(script.parent))
    main = importlib.import_module(script.stem).main
    threads = torch.get_num_threads()
    capsys.readouterr()
    try:
        assert main(["--smoke", *args]) == 0
    finally:
        torch.set_num_threads(threads)
    return capsys.readouterr().out


@pytest.fixture(scope="module")
def smoke(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One smoke run of the benchmark, shared by the tests of this module."""
    out = tmp_path_factory.mktemp("fm")
    return out, _run(SCRIPT, "--out", str(out))


def test_smoke_run_writes_rows_at_the_budget_and_resumes(smoke, monkeypatch, capsys) -> None:
    out, first = smoke
    assert first.returncode == 0, first.stderr[-2000:]
    with (out / "fashion_mnist_runs.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {r["method"] for r in rows} == METHODS
    for r in rows:  # every method meets the same MACs budget
        assert 0 < float(r["macs_ratio"]) <= float(r["budget"]) + 1e-9
        assert 0 <= float(r["test_top1"]) <= 1
        assert r["baseline_top1"] == rows[0]["baseline_top1"]
    md = (out / "fashion_mnist_results.md").read_text()
    assert "| iaprune |" in md and "| tp-global |" in md

    # every row is done: a rerun only re-reads them
    again = _rerun(SCRIPT, "--out", str(out), monkeypatch=monkeypatch, capsys=capsys)
    assert "0 rows to run (7 done)" in again


def test_a_row_fine_tuned_with_another_seed_reruns_and_keeps_its_search(
    smoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out, first = smoke
    assert first.returncode == 0, first.stderr[-2000:]
    copy = tmp_path / "fm"
    shutil.copytree(out, copy)
    rows = [json.loads(line) for line in (copy / "rows.jsonl").read_text().splitlines()]
    (old,) = [r for r in rows if r["method"] == "iaprune"]
    assert old["finetune_seed"] == old["seed"] == 0 and not old["search_reused"]
    stale = {**old, "finetune_seed": 7, "test_top1": -1.0}  # an earlier protocol's row
    with (copy / "rows.jsonl").open("a") as fh:
        fh.write(json.dumps(stale) + "\n")
    trials = (copy / "runs" / old["key"] / "search.json").read_text()
    again = _rerun(SCRIPT, "--out", str(copy), monkeypatch=monkeypatch, capsys=capsys)
    assert "1 rows to run (7 done)" in again
    rows = [json.loads(line) for line in (copy / "rows.jsonl").read_text().splitlines()]
    redone = rows[-1]
    assert redone["key"] == old["key"] and redone["search_reused"]
    assert redone["finetune_seed"] == 0 and redone["chosen"] == old["chosen"]
    assert redone["test_top1"] == old["test_top1"]  # same spec, same fine-tune seed
    assert redone["search_seconds"] == old["search_seconds"]
    assert (copy / "runs" / old["key"] / "search.json").read_text() == trials


def test_picks_fidelity_scores_the_allocations_the_methods_chose(
    smoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out, first = smoke
    assert first.returncode == 0, first.stderr[-2000:]
    fid = tmp_path / "fid"  # proxy_fidelity.py runs as a script in the next test
    _rerun(FIDELITY, "--picks", str(out), "--out", str(fid), monkeypatch=monkeypatch, capsys=capsys)
    rows = [json.loads(line) for line in (fid / "picks.jsonl").read_text().splitlines()]
    with (out / "fashion_mnist_runs.csv").open() as fh:
        tested = {float(r["test_top1"]) for r in csv.DictReader(fh)}
    assert 2 <= len(rows) <= len(METHODS)  # one row per distinct chosen allocation
    for row in rows:
        assert row["test_top1"] in tested  # the benchmark's own fine-tuned accuracy
        assert row["val_top1"] is None  # not fine-tuned here
        assert set(row["scores"]) == {"bn", "sgd30"}
        assert row["macs_ratio"] <= 0.5 + 1e-9
    assert (fid / "proxy_fidelity_picks_test_vgg_0.5.md").is_file()


def test_fidelity_resumes_and_redoes_a_candidate_whose_allocation_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fid"
    first = _run(FIDELITY, "--out", str(out))
    assert first.returncode == 0, first.stderr[-2000:]
    lines = (out / "fidelity.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) >= 5 and all(set(r["scores"]) == {"bn", "sgd30"} for r in rows)
    assert all(0 < r["val_top1"] <= 1 for r in rows)  # fine-tuned validation accuracy
    table = (out / "proxy_fidelity.md").read_text()
    assert "τ (val)" in table and "n/a" not in table
    stale = {**rows[0], "keep": {k: 1 for k in rows[0]["keep"]}}  # an older candidate 0
    (out / "fidelity.jsonl").write_text("\n".join([*lines, json.dumps(stale)]) + "\n")
    again = _rerun(FIDELITY, "--out", str(out), monkeypatch=monkeypatch, capsys=capsys)
    assert f"1 candidates to score and fine-tune ({len(rows)} done)" in again
    redone = json.loads((out / "fidelity.jsonl").read_text().splitlines()[-1])
    assert redone["key"] == rows[0]["key"] and redone["keep"] == rows[0]["keep"]
