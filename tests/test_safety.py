"""Untrusted files never run code; outputs never clobber run files or non-regular targets."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from iaprune.cli.main import main
from iaprune.errors import IAPruneError
from iaprune.fileio import write_atomic
from iaprune.model_source import ModelRecipe, resolve_model
from iaprune.models import create_model
from iaprune.pipeline import load_pruned
from iaprune.train.checkpoint import load_state, load_weights
from tests.conftest import TINY_RUN_ARGS

FAST = TINY_RUN_ARGS

FACTORY = """
from pathlib import Path
from iaprune.models import create_model

def make(marker, **kwargs):
    Path(marker).write_text("ran")
    return create_model("test_vgg", **kwargs)
"""


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


class _RunsShell:
    """Unpickling this runs a shell command (what a malicious .pt file does)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


# -- model.json in a received run directory ------------------------------------------------


@pytest.mark.parametrize("command", ["evaluate", "finetune", "export"])
def test_os_system_in_model_json_does_not_run(
    received_run: Path, tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "pwned"
    recipe = {"kind": "factory", "target": "os:system", "kwargs": {"command": f"touch {marker}"}}
    (received_run / "model.json").write_text(json.dumps(recipe))
    assert main([command, str(received_run)]) == 2
    assert "--trust-code" in _error(capsys)
    assert not marker.exists()


def test_factory_in_model_json_runs_only_with_trust_code(
    received_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    (tmp_path / "iaprune_marker_factory.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    marker = tmp_path / "marker"
    recipe = json.loads((received_run / "model.json").read_text())
    recipe.update(kind="factory", target="iaprune_marker_factory:make")
    recipe["kwargs"]["marker"] = str(marker)
    (received_run / "model.json").write_text(json.dumps(recipe))

    assert main(["evaluate", str(received_run)]) == 2
    message = _error(capsys)
    assert "--trust-code" in message and "iaprune_marker_factory:make" in message
    assert not marker.exists()
    with pytest.raises(IAPruneError, match="trust"):
        load_pruned(received_run)
    assert not marker.exists()

    assert main(["evaluate", str(received_run), "--trust-code"]) == 0
    assert marker.read_text() == "ran"
    assert isinstance(load_pruned(received_run, trust_code=True), nn.Module)


def test_resume_does_not_run_a_received_factory(received_run: Path, tmp_path: Path, capsys) -> None:
    marker = tmp_path / "pwned"
    recipe = {"kind": "factory", "target": "os:system", "kwargs": {"command": f"touch {marker}"}}
    (received_run / "model.json").write_text(json.dumps(recipe))
    config = json.loads((received_run / "config.json").read_text())
    config["model"] = "os:system"
    (received_run / "config.json").write_text(json.dumps(config))
    # the same options as the run was made with (now naming the factory): only trust is missing
    args = [a if a != "test_vgg" else "os:system" for a in FAST]
    assert main(["search", "--run-dir", str(received_run), "--resume", *args]) == 2
    assert "--trust-code" in _error(capsys)
    assert not marker.exists()


def test_help_names_the_opt_in(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("prune", "search", "evaluate", "finetune", "export", "latency-table"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "--trust-code" in capsys.readouterr().out, command


# -- pickled files ---------------------------------------------------------------------------


def test_pickled_model_file_needs_trust_code(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save(create_model("test_vgg", num_classes=10, in_channels=1), path)
    with pytest.raises(IAPruneError, match="--trust-code"):
        resolve_model(str(path), num_classes=10, in_channels=1)
    recipe = resolve_model(str(path), num_classes=10, in_channels=1, trust_code=True)
    assert isinstance(recipe.build(), nn.Module)
    stored = ModelRecipe.from_dict(recipe.to_dict())
    with pytest.raises(IAPruneError, match="--trust-code"):
        stored.build()


def test_malicious_pickle_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": _RunsShell(f"touch {marker}")}, path)
    with pytest.raises(IAPruneError, match="--trust-code"):
        resolve_model(str(path), num_classes=10, in_channels=1)
    with pytest.raises(IAPruneError, match="objects other than tensors"):
        load_state(path)
    assert not marker.exists()


def test_state_dict_given_as_model_points_to_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save(create_model("test_vgg", num_classes=10, in_channels=1).state_dict(), path)
    with pytest.raises(IAPruneError, match="--checkpoint"):
        resolve_model(str(path), num_classes=10, in_channels=1)


@pytest.mark.parametrize("state", [5, [1, 2], "weights", {0: torch.zeros(1)}])
def test_checkpoint_whose_state_dict_is_not_a_mapping(tmp_path: Path, state: object) -> None:
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": state}, path)
    with pytest.raises(IAPruneError, match="not a mapping"):
        load_weights(create_model("test_vgg", num_classes=10, in_channels=1), path)


def test_received_run_with_os_system_exits_2_in_a_subprocess(received_run: Path, tmp_path) -> None:
    marker = tmp_path / "pwned"
    recipe = {"kind": "factory", "target": "os:system", "kwargs": {"command": f"touch {marker}"}}
    (received_run / "model.json").write_text(json.dumps(recipe))
    proc = subprocess.run(
        [sys.executable, "-m", "iaprune.cli.main", "evaluate", str(received_run)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and not marker.exists()
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--trust-code" in lines[0]


# -- export and latency-table outputs --------------------------------------------------------


@pytest.mark.parametrize("name", ["config.json", "report", "spec.json", "pruned.pt", "."])
def test_export_refuses_run_files(received_run: Path, name: str, capsys) -> None:
    before = _snapshot(received_run)
    target = str(received_run / name)
    assert main(["export", str(received_run), "-o", target, "--repeats", "1"]) == 2
    assert "error: " in _error(capsys)
    assert _snapshot(received_run) == before


def test_export_refuses_non_regular_targets(received_run: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for target in (folder, fifo, Path("/dev/full")):
        argv = ["export", str(received_run), "-o", str(target), "--format", "torchscript"]
        assert main([*argv, "--repeats", "1"]) == 2
        message = _error(capsys)
        assert "regular file" in message or "directory" in message
    assert fifo.is_fifo() and folder.is_dir() and Path("/dev/full").is_char_device()


def test_export_side_file_of_output_is_checked(received_run: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "m.ts.pt.json").mkdir()
    argv = ["export", str(received_run), "-o", str(tmp_path / "m.ts.pt"), "--format", "torchscript"]
    assert main([*argv, "--repeats", "1"]) == 2
    assert "m.ts.pt.json" in _error(capsys)
    assert not (tmp_path / "m.ts.pt").exists()


def test_export_baseline_has_its_own_default_path(received_run: Path, capsys) -> None:
    argv = ["export", str(received_run), "--format", "torchscript", "--repeats", "1"]
    assert main(argv) == 0
    pruned = (received_run / "pruned.ts.pt").read_bytes()
    assert main([*argv, "--baseline"]) == 0
    assert (received_run / "baseline.ts.pt").is_file()
    assert (received_run / "pruned.ts.pt").read_bytes() == pruned
    side = json.loads((received_run / "baseline.ts.pt.json").read_text())
    assert side["path"].endswith("baseline.ts.pt")
    assert "OUTPUT.json" in _help(capsys, "export")


def _help(capsys: pytest.CaptureFixture[str], command: str) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main([command, "--help"])
    return capsys.readouterr().out


LUT = [
    "latency-table",
    "--model",
    "test_vgg",
    "--width-mult",
    "1",
    "--input-size",
    "16",
    "--grid",
    "2",
    "--warmup",
    "0",
    "--repeats",
    "1",
]


def test_latency_table_refuses_non_regular_output(tmp_path: Path, capsys) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for target in (tmp_path, fifo, Path("/dev/full")):
        assert main([*LUT, "--output", str(target)]) == 2
        message = _error(capsys)
        assert "regular file" in message or "directory" in message
    assert fifo.is_fifo() and Path("/dev/full").is_char_device()


def test_latency_table_unwritable_output_is_one_line(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main([*LUT, "--output", str(blocker / "t.json")]) == 2
    message = _error(capsys)
    assert "cannot" in message and "t.json" in message
    assert blocker.read_text() == "x"


def test_latency_table_does_not_overwrite_a_foreign_file(tmp_path: Path, capsys) -> None:
    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": 1}')
    assert main([*LUT, "--output", str(notes)]) == 2
    assert "not overwriting" in _error(capsys)
    assert notes.read_text() == '{"mine": 1}'


def test_atomic_write_never_replaces_a_non_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for target in (fifo, tmp_path):
        with pytest.raises(IAPruneError, match="regular file|directory"):
            write_atomic(target, lambda fh: fh.write("{}"), what="table")
    assert fifo.is_fifo()
    link = tmp_path / "link.json"
    real = tmp_path / "real.json"
    real.write_text("old")
    link.symlink_to(real)
    write_atomic(link, lambda fh: fh.write("new"), what="table")  # replaces the link only
    assert not link.is_symlink() and link.read_text() == "new" and real.read_text() == "old"


def test_zoo_recipe_with_foreign_arguments_is_one_line_error() -> None:
    recipe = ModelRecipe.from_dict({"kind": "zoo", "target": "test_vgg", "kwargs": {"evil": 1}})
    with pytest.raises(IAPruneError, match="evil"):
        recipe.build()
    with pytest.raises(IAPruneError, match="JSON object"):
        ModelRecipe.from_dict(["zoo"])  # type: ignore[arg-type]


def test_export_baseline_never_trains_an_unfinished_baseline(
    received_run: Path, tmp_path: Path, capsys
) -> None:
    (received_run / "baseline.pt").unlink()
    out = tmp_path / "b.onnx"
    code = main(
        ["export", str(received_run), "--baseline", "--format", "torchscript", "-o", str(out)]
    )
    assert code == 2
    assert "not finished" in _error(capsys)
    assert not (received_run / "baseline.pt").exists() and not out.exists()


# -- issue 23: what a received run directory may make iaprune run or write -----------------


def _set_config(run: Path, **changes: object) -> None:
    config = json.loads((run / "config.json").read_text())
    for dotted, value in changes.items():
        node = config
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node[key]
        node[leaf] = value
    (run / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("command", ["prune", "search"])
def test_resume_without_model_json_does_not_run_the_config_factory(
    received_run: Path, tmp_path: Path, command: str, capsys
) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.py"
    evil.write_text(FACTORY.replace("def make(marker,", f"def make(marker={str(marker)!r},"))
    (received_run / "model.json").unlink()
    _set_config(received_run, model=f"{evil}:make")
    assert main([command, "--run-dir", str(received_run), "--resume"]) == 2
    message = _error(capsys)
    assert "--trust-code" in message and "evil.py:make" in message
    assert not marker.exists() and not (received_run / "model.json").exists()


def test_the_current_directory_is_not_on_the_import_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "pwned"
    (tmp_path / "iaprune_evilmod.py").write_text(
        FACTORY.replace("def make(marker,", f"def make(marker={str(marker)!r},")
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    before = list(sys.path)
    recipe = ModelRecipe("factory", "iaprune_evilmod:make", trusted=True)
    with pytest.raises(IAPruneError, match="iaprune_evilmod.py:make"):  # says how to name it
        recipe.build()
    assert sys.path == before and not marker.exists()


def test_export_replaces_planted_links_instead_of_following_them(
    received_run: Path, tmp_path: Path
) -> None:
    victims = {}
    for name in ("pruned.ts.pt", "pruned.ts.pt.json"):
        victim = tmp_path / f"victim-{name}"
        victim.write_text("precious")
        (received_run / name).symlink_to(victim)
        victims[name] = victim
    assert main(["export", str(received_run), "--format", "torchscript", "--repeats", "1"]) == 0
    for name, victim in victims.items():
        assert victim.read_text() == "precious"
        assert not (received_run / name).is_symlink() and (received_run / name).is_file()
    assert json.loads((received_run / "pruned.ts.pt.json").read_text())["format"] == "torchscript"


def test_report_replaces_a_planted_plots_link(received_run: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "history.png").write_bytes(b"precious")
    shutil.rmtree(received_run / "plots")
    (received_run / "plots").symlink_to(elsewhere)
    assert main(["report", str(received_run), "--format", "md"]) == 0
    assert sorted(p.name for p in elsewhere.iterdir()) == ["history.png"]
    assert (elsewhere / "history.png").read_bytes() == b"precious"
    plots = received_run / "plots"
    assert not plots.is_symlink() and (plots / "history.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("name", ["report.md", "report.html"])
def test_report_to_a_directory_is_one_line(received_run: Path, name: str, capsys) -> None:
    (received_run / name).unlink()
    (received_run / name).mkdir()
    assert main(["report", str(received_run)]) == 2
    assert name in _error(capsys)
    assert (received_run / name).is_dir()


def test_report_with_plots_as_a_file_is_one_line(received_run: Path, capsys) -> None:
    shutil.rmtree(received_run / "plots")
    (received_run / "plots").write_text("mine")
    assert main(["report", str(received_run), "--format", "md"]) == 2
    assert "plots" in _error(capsys)
    assert (received_run / "plots").read_text() == "mine"


def test_report_on_a_full_disk_is_one_line(
    received_run: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import errno

    before = _snapshot(received_run)

    def full(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    assert main(["report", str(received_run), "--no-plots"]) == 2
    assert "No space left on device" in _error(capsys)
    monkeypatch.undo()
    assert _snapshot(received_run) == before
    assert not [p for p in received_run.rglob("*.tmp")]


def test_interrupted_export_leaves_no_unverified_file(
    received_run: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import iaprune.export.verify as verify

    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(verify, "time_callable", interrupted)
    argv = ["export", str(received_run), "--format", "torchscript", "--repeats", "1"]
    assert main(argv) == 130
    left = sorted(p.name for p in received_run.iterdir() if "ts.pt" in p.name)
    assert left == []


def test_resume_refuses_a_study_db_that_is_a_link(
    received_run: Path, tmp_path: Path, capsys
) -> None:
    other = tmp_path / "other.db"
    (received_run / "study.db").rename(other)
    (received_run / "study.db").symlink_to(other)
    before = other.read_bytes()
    assert main(["prune", "--run-dir", str(received_run), "--resume", "--trials", "3"]) == 2
    assert "study.db" in _error(capsys)
    assert other.read_bytes() == before


def test_resume_does_not_use_a_stored_storage_url(
    received_run: Path, tmp_path: Path, capsys
) -> None:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    url = f"sqlite:///{folder}/study.db"
    _set_config(received_run, search__storage=url)
    assert main(["prune", "--run-dir", str(received_run), "--resume", "--trials", "3"]) == 2
    message = _error(capsys)
    assert "--storage" in message and str(folder) in message
    assert list(folder.iterdir()) == []


def test_resume_does_not_write_a_stored_latency_table(received_run: Path, tmp_path: Path) -> None:
    from dataclasses import replace

    from iaprune.config import RunConfig
    from iaprune.session import Session

    folder = tmp_path / "elsewhere"
    _set_config(received_run, cost__table=str(folder / "table.json"))
    config = RunConfig(model="test_vgg", width_mult=1.0)
    session = Session.create(received_run, config, resume=True, explicit=["model"])
    objective = replace(session.config.search.objective, max_latency_ms=100.0)
    session.config = replace(
        session.config,
        search=replace(session.config.search, objective=objective),
        cost=replace(session.config.cost, latency="predicted"),
    )
    model = session.build_model()
    with pytest.raises(IAPruneError, match="--latency-table"):
        session.trial_cost(model, session.pruner(model))
    assert not folder.exists()


def test_resume_does_not_download_because_the_run_says_so() -> None:
    from iaprune.config import RunConfig
    from iaprune.resume import confirm_outputs

    stored = RunConfig(model="test_vgg", dataset="mnist", download=True)
    assert not confirm_outputs(stored, explicit=["model"])[0].download
    assert confirm_outputs(stored, explicit=["download"])[0].download
