"""Bad input through the real CLI: exit code 2, one line on stderr, no traceback, no damage.

Every case of ``CASES`` runs the CLI's ``main`` in-process as ``python -m iaprune.cli.main``
would run it (:func:`_main_as_a_process`): from the case's folder with that folder first on
``sys.path``, with the stderr log handler at INFO that a process without a terminal gets,
and Python's default warning filters, so a log line, a printed warning or a traceback
before the one error line fails the case as it would in a subprocess. One case per
subcommand (``SUBPROCESS_CASES``) also runs in a real ``python -m iaprune.cli.main``
process, which proves what the in-process run stands in for (start-up, stderr, exit code).
A finished run directory sits next to the cases, and some cases target it (``--resume``
with a changed definition); it must be byte-identical afterwards.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from PIL import Image

import iaprune
from iaprune import session as session_module
from iaprune.cli.main import main
from iaprune.models import create_model
from iaprune.train import checkpoint
from tests.conftest import tiny_args

# The subprocess imports this checkout's package whatever the working directory.
ENV = {k: v for k, v in os.environ.items() if k != "IAPRUNE_LUT_DIR"}
ENV["PYTHONPATH"] = str(Path(iaprune.__file__).resolve().parents[1])

TINY = tiny_args(width_mult=None, batch_size=None)

USER_MODELS = """
import torch
import torch.nn as nn

def linear(num_classes, in_channels):
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 64, num_classes))

def raises(num_classes, in_channels):
    raise RuntimeError("factory exploded")

def rgb_only(num_classes, in_channels):
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, num_classes))

class Pair(nn.Module):
    def __init__(self, num_classes, in_channels):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 8, 3)
        self.head = nn.Linear(8, num_classes)

    def forward(self, x):
        y = self.head(self.conv(x).mean((2, 3)))
        return y, y

def pair(num_classes, in_channels):
    return Pair(num_classes, in_channels)

class Picky(nn.Module):
    def __init__(self, num_classes, in_channels):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 16, 3)
        self.head = nn.Linear(16, num_classes)

    def forward(self, x):
        y = self.conv(x)
        if y.shape[1] < 8:
            raise ValueError("needs at least 8 channels")
        return self.head(y.mean((2, 3)))

def picky(num_classes, in_channels):
    return Picky(num_classes, in_channels)

class Scaled(nn.Module):
    def __init__(self, num_classes, in_channels, scale):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 8, 3)
        self.head = nn.Linear(8, num_classes)
        self.scale = scale

    def forward(self, x):
        return self.head(self.conv(x).mean((2, 3))) * self.scale

class Rounded(Scaled):
    def forward(self, x):
        return super().forward(x).long()

def int_out(num_classes, in_channels):
    return Rounded(num_classes, in_channels, 1.0)

def nan_out(num_classes, in_channels):
    return Scaled(num_classes, in_channels, float("nan"))
"""


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def work(tiny_run: Path, tmp_path_factory) -> Path:
    """A folder with a finished run, user model files and broken copies of the run.

    The finished run ``done`` is a copy of the session's ``tiny_run`` (test_vgg on digits).
    """
    root = tmp_path_factory.mktemp("bad")
    shutil.copytree(tiny_run, root / "done")
    (root / "models.py").write_text(USER_MODELS)
    (root / "a_file").write_text("not a folder")
    torch.save({"state_dict": "not a dict"}, root / "string_state.pt")
    torch.save({"state_dict": {f"w{i}": torch.zeros(1) for i in range(400)}}, root / "other.pt")
    _broken_copy(root, "garbage_db", lambda r: (r / "study.db").write_bytes(b"garbage" * 100))
    _broken_copy(
        root, "config_missing", lambda r: _edit(r / "config.json", lambda d: d.pop("model"))
    )
    _broken_copy(root, "config_types", lambda r: _edit(r / "config.json", _bad_trials))
    _broken_copy(root, "model_missing", lambda r: (r / "model.json").write_text("{}"))
    _broken_copy(
        root, "search_missing", lambda r: _edit(r / "search.json", lambda d: d.pop("spec"))
    )
    _untrusted_run_dirs(root)
    _broken_copy(root, "wide", _wider_baseline)
    _broken_copy(root, "search_list", lambda r: (r / "search.json").write_text("[]"))
    _broken_copy(root, "finetune_list", lambda r: (r / "finetune.json").write_text("[]"))
    _broken_copy(root, "unfinished", lambda r: (r / "pruned.pt").unlink())
    _broken_copy(root, "no_study", lambda r: (r / "study.db").unlink())
    (root / "a_dir").mkdir()
    os.mkfifo(root / "fifo")
    (root / "weights.json").write_text('{"state_dict": {}}')
    state = create_model("test_vgg", num_classes=10, in_channels=1, width_mult=0.25).state_dict()
    state["features.0.weight"][0, 0, 0, 0] = float("nan")
    torch.save(state, root / "nan.pt")
    _image_folder(root / "images_bad_test").joinpath("val", "b", "0.png").write_text("garbage")
    Image.new("1", (20000, 20000)).save(_image_folder(root / "images_bomb") / "train/a/1.png")
    return root


def _wider_baseline(run: Path) -> None:
    """baseline.pt of the run's model at twice its width."""
    model = create_model("test_vgg", num_classes=10, in_channels=1, width_mult=2.0)
    torch.save({"state_dict": model.state_dict(), "complete": True}, run / "baseline.pt")


def _image_folder(root: Path) -> Path:
    """An imagefolder dataset of two classes, 8x8 RGB images."""
    gen = torch.Generator().manual_seed(0)
    for split, count in (("train", 6), ("val", 2)):
        for label in ("a", "b"):
            (root / split / label).mkdir(parents=True)
            for i in range(count):
                pixels = torch.randint(0, 256, (8, 8, 3), generator=gen, dtype=torch.uint8)
                Image.fromarray(pixels.numpy()).save(root / split / label / f"{i}.png")
    return root


def _untrusted_run_dirs(root: Path) -> None:
    """Image folders without a task, and run directories planted with links and paths."""
    from PIL import Image

    for name, classes in (("one_class", {"only": 2}), ("empty_class", {"a": 2, "b": 0})):
        for split in ("train", "val"):
            for cls, n in classes.items():
                (root / name / split / cls).mkdir(parents=True)
                for i in range(n):
                    Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(
                        root / name / split / cls / f"{i}.png"
                    )

    def factory_no_model_json(run: Path) -> None:
        (run / "model.json").unlink()
        _edit(run / "config.json", lambda d: d.update(model=f"{root}/models.py:raises"))

    def storage(run: Path) -> None:
        url = f"sqlite:///{root}/elsewhere/study.db"
        _edit(run / "config.json", lambda d: d["search"].update(storage=url))

    def linked_db(run: Path) -> None:
        (run / "study.db").rename(root / "other.db")
        (run / "study.db").symlink_to(root / "other.db")

    def plots_file(run: Path) -> None:
        shutil.rmtree(run / "plots")
        (run / "plots").write_text("a file")

    def report_dir(name: str) -> Callable[[Path], None]:
        def damage(run: Path) -> None:
            (run / name).unlink()
            (run / name).mkdir()

        return damage

    _broken_copy(root, "factory_no_model_json", factory_no_model_json)
    _broken_copy(root, "stored_storage", storage)
    _broken_copy(root, "linked_db", linked_db)
    _broken_copy(root, "plots_file", plots_file)
    _broken_copy(root, "report_md_dir", report_dir("report.md"))
    _broken_copy(root, "report_json_dir", report_dir("report.json"))


def _broken_copy(root: Path, name: str, damage: Callable[[Path], object]) -> None:
    shutil.copytree(root / "done", root / name)
    damage(root / name)


def _edit(path: Path, change: Callable[[dict], object]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _bad_trials(data: dict) -> None:
    data["search"]["trials"] = "many"


NEW = ["prune", "--run-dir", "{new}", *TINY]
RESUME = ["prune", "--run-dir", "{work}/done", "--resume"]

CASES = {
    "trials 0": ([*NEW, "--trials", "0"], "at least one trial"),
    "unknown device": ([*NEW, "--device", "tpu9"], "unknown device"),
    "data workers -1": ([*NEW, "--data-workers", "-1"], "--data-workers must be"),
    "tie nope": ([*NEW, "--tie", "nope"], "unknown --tie"),
    "space nope": ([*NEW, "--space", "nope"], "unknown search space"),
    "distill without trial steps": ([*NEW, "--distill", "0.5"], "--trial-steps"),
    "w-macs nan": ([*NEW, "--objective", "weighted", "--w-macs", "nan"], "finite"),
    "w-macs inf": ([*NEW, "--objective", "weighted", "--w-macs", "inf"], "finite"),
    "w-macs without weighted": ([*NEW, "--w-macs", "0.5"], "--objective weighted"),
    "max-latency-ms nan": ([*NEW, "--max-latency-ms", "nan"], "max_latency_ms"),
    "max-latency-ms inf": ([*NEW, "--max-latency-ms", "inf"], "max_latency_ms"),
    "width-mult nan": ([*NEW, "--width-mult", "nan"], "width_mult"),
    "bn-batches -5": ([*NEW, "--bn-batches", "-5"], "--bn-batches"),
    "trial-steps -1": ([*NEW, "--trial-steps", "-1"], "--trial-steps"),
    "final-steps -1": ([*NEW, "--final-steps", "-1"], "--final-steps"),
    "final-rungs before final-steps": ([*NEW, "--final-rungs", "2:2"], "more steps"),
    "final-rungs malformed": ([*NEW, "--final-rungs", "200"], "STEPS:SURVIVORS"),
    "unknown sampler": ([*NEW, "--sampler", "nope"], "unknown sampler 'nope'"),
    "unknown importance": ([*NEW, "--importance", "nope"], "unknown importance 'nope'"),
    "unknown backend": ([*NEW, "--backend", "nope"], "nope"),
    "bad storage url": ([*NEW, "--storage", "nope://x"], "cannot open study storage"),
    "unreachable postgres": (
        [*NEW, "--storage", "postgresql+psycopg://u@/db?host=/nonexistent&connect_timeout=2"],
        "cannot open study storage",
    ),
    "workers 0": ([*NEW, "--workers", "0"], "--workers and --heartbeat must be >= 1"),
    "heartbeat 0": ([*NEW, "--heartbeat", "0"], "--workers and --heartbeat must be >= 1"),
    "finetune no run dir": (["finetune", "{work}/nothing"], "not an iaprune run directory"),
    "worker no run dir": (["worker", "{work}/nothing", "--wait", "0"], "not an iaprune run"),
    "unreachable budget": ([*NEW, "--max-macs", "0.0001"], "unreachable"),
    "no prunable conv": ([*NEW, "--model", "{work}/models.py:linear"], "no prunable conv"),
    "factory raises": ([*NEW, "--model", "{work}/models.py:raises"], "factory exploded"),
    "3 channels on 1": ([*NEW, "--model", "{work}/models.py:rgb_only"], "fails on input"),
    "forward tuple": ([*NEW, "--model", "{work}/models.py:pair"], "returns a tuple"),
    "module factory raises": ([*NEW, "--model", "models:raises"], "factory exploded"),
    "module forward tuple": ([*NEW, "--model", "models:pair"], "returns a tuple"),
    "module 3 channels on 1": ([*NEW, "--model", "models:rgb_only"], "fails on input"),
    "state_dict string": (
        [*NEW, "--checkpoint", "{work}/string_state.pt"],
        "string_state.pt",
    ),
    "checkpoint mismatch": ([*NEW, "--checkpoint", "{work}/other.pt"], "does not match"),
    "run dir under a file": (["prune", "--run-dir", "{work}/a_file/run", *TINY], "a_file"),
    "resume changed model": (
        [*RESUME, "--model", "test_resnet", "--dataset", "synthetic", "--max-macs", "0.2"],
        "model: test_vgg -> test_resnet",
    ),
    "resume changed seed": ([*RESUME, "--seed", "3"], "seed: 0 -> 3"),
    "resume finished baseline epochs": (
        [*RESUME, "--baseline-epochs", "5"],
        "baseline is finished",
    ),
    "resume changed objective": ([*RESUME, "--objective", "pareto"], "kind: constrained"),
    "resume garbage study.db": (
        ["prune", "--run-dir", "{work}/garbage_db", "--resume", "--trials", "3"],
        "cannot open study storage",
    ),
    "resume config missing key": (
        ["prune", "--run-dir", "{work}/config_missing", "--resume"],
        "missing key(s) model",
    ),
    "resume config wrong type": (
        ["prune", "--run-dir", "{work}/config_types", "--resume"],
        "trials has the wrong type",
    ),
    "evaluate config wrong type": (["evaluate", "{work}/config_types"], "wrong type"),
    "evaluate model.json empty": (["evaluate", "{work}/model_missing"], "model.json is invalid"),
    "finetune search.json missing": (["finetune", "{work}/search_missing"], "search.json"),
    "finetune epochs -1": (["finetune", "{work}/done", "--epochs", "-1"], "epochs >= 0"),
    "latency-table nowhere to write": (["latency-table", "--model", "test_vgg"], "--output"),
}
IMAGES = ["--dataset", "imagefolder", "--image-size", "16", "--data-root"]
CASES |= {  # issue 23: results without meaning, and run directories one must not trust
    "imagefolder one class": ([*NEW, *IMAGES, "{work}/one_class"], "1 class"),
    "imagefolder empty class": ([*NEW, *IMAGES, "{work}/empty_class"], "'b'"),
    "resume factory without model.json": (
        ["prune", "--run-dir", "{work}/factory_no_model_json", "--resume"],
        "--trust-code",
    ),
    "search resume factory without model.json": (
        ["search", "--run-dir", "{work}/factory_no_model_json", "--resume"],
        "--trust-code",
    ),
    "resume stored storage": (
        ["prune", "--run-dir", "{work}/stored_storage", "--resume", "--trials", "3"],
        "--storage",
    ),
    "resume study.db link": (
        ["prune", "--run-dir", "{work}/linked_db", "--resume", "--trials", "3"],
        "study.db",
    ),
    "report plots is a file": (["report", "{work}/plots_file"], "plots"),
    "report report.md is a directory": (["report", "{work}/report_md_dir"], "report.md"),
    "report report.json is a directory": (["report", "{work}/report_json_dir"], "report.json"),
    "resume report.json is a directory": (
        ["prune", "--run-dir", "{work}/report_json_dir", "--resume"],
        "report.json",
    ),
}


# One case per subcommand also runs in a real process.
SUBPROCESS_CASES = [
    "module factory raises",  # prune, with a module found in the current directory
    "search resume factory without model.json",
    "finetune search.json missing",
    "worker no run dir",
    "evaluate model.json empty",
    "report plots is a file",
    "latency-table nowhere to write",
]


def _case(name: str, work: Path, tmp_path: Path) -> tuple[list[str], str]:
    """The case's argv (formatted) and expected message; ``models.py`` put in ``tmp_path``."""
    args, message = CASES[name]
    shutil.copy(work / "models.py", tmp_path)  # importable as 'models' from the cwd
    return [a.format(work=work, new=tmp_path / "new") for a in args], message


def _check_one_line(code: int, stderr: str, message: str, work: Path, tmp_path: Path) -> None:
    lines = stderr.strip().splitlines()
    assert code == 2, stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr[-2000:]
    assert "Traceback" not in stderr
    assert message in lines[0]
    assert len(lines[0]) <= 520
    assert not (tmp_path / "new" / "config.json").exists()  # nothing saved for a rejected run
    assert not (work / "elsewhere").exists()  # no file made where a received run points


@contextmanager
def _main_as_a_process(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """What ``python -m iaprune.cli.main`` without a terminal has that pytest's process lacks.

    The cwd first on ``sys.path`` (``models`` imports from it, a fresh import per case);
    ``ENV``; the root stream handler at INFO that ``logging.basicConfig`` in ``setup_logging``
    installs in a process whose stderr is no terminal (pytest's own handlers make it a
    no-op here), writing to the captured stderr; Python's default warning filters, with
    every warning that a process would print to stderr appended to it.
    """
    monkeypatch.chdir(cwd)
    monkeypatch.syspath_prepend(str(cwd))
    monkeypatch.delenv("IAPRUNE_LUT_DIR", raising=False)
    sys.modules.pop("models", None)
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)  # sys.stderr: capsys's, set before the test
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.resetwarnings()  # the filters of a plain `python` (no -W, no pytest)
            warnings.simplefilter("default")
            for category in (PendingDeprecationWarning, ImportWarning, ResourceWarning):
                warnings.simplefilter("ignore", category)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")
            yield
        for w in caught:  # each would be printed on stderr by the process
            sys.stderr.write(warnings.formatwarning(w.message, w.category, w.filename, w.lineno))
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        sys.modules.pop("models", None)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_exits_2_with_one_line(
    name: str, work: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    argv, message = _case(name, work, tmp_path)
    before = _digest(work / "done")
    capsys.readouterr()
    with _main_as_a_process(tmp_path, monkeypatch):
        code = main(argv)
    _check_one_line(code, capsys.readouterr().err, message, work, tmp_path)
    assert _digest(work / "done") == before


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_bad_input_exits_2_with_one_line_in_a_real_process(
    name: str, work: Path, tmp_path: Path
) -> None:
    argv, message = _case(name, work, tmp_path)
    before = _digest(work / "done")
    proc = subprocess.run(
        [sys.executable, "-m", "iaprune.cli.main", *argv],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env=ENV,
        timeout=300,
    )
    _check_one_line(proc.returncode, proc.stderr, message, work, tmp_path)
    assert _digest(work / "done") == before


# Issue 23: the last tracebacks and unclear messages. In-process (``main``), which fails on
# a traceback as a subprocess would and saves a Python start-up per case.
FOLDER = ["--dataset", "imagefolder", "--image-size", "8", "--data-root"]
MORE_CASES = {
    "evaluate baseline of another width": (
        ["evaluate", "{work}/wide", "--baseline"],
        "baseline.pt does not match the model: size mismatch",
    ),
    "export baseline of another width": (
        ["export", "{work}/wide", "--baseline", "-o", "{new}.onnx"],
        "does not match the model",
    ),
    "finetune baseline of another width": (["finetune", "{work}/wide"], "does not match"),
    "worker baseline of another width": (["worker", "{work}/wide"], "does not match"),
    "resume baseline of another width": (
        ["prune", "--run-dir", "{work}/wide", "--resume"],
        "does not match",
    ),
    "report search.json []": (["report", "{work}/search_list"], "expected a JSON object"),
    "report finetune.json []": (["report", "{work}/finetune_list"], "expected a JSON object"),
    "model raises at its smallest width": (
        [*NEW, "--model", "{work}/models.py:picky"],
        "fails at the smallest allowed widths (min ratio 0.05, min keep 1): needs at least 8",
    ),
    "integer output": ([*NEW, "--model", "{work}/models.py:int_out"], "must return float"),
    "pad-to 100000": ([*NEW, "--pad-to", "100000"], "--pad-to must be in 1..4096"),
    "image-size 100000": (
        [*NEW, *FOLDER, "{work}/images_bad_test", "--image-size", "100000"],
        "--image-size must be in 1..4096",
    ),
    "export batch-size 100000000": (
        ["export", "{work}/done", "--batch-size", "100000000", "-o", "{new}.onnx"],
        "batch size must be at most 65536",
    ),
    "decompression bomb": ([*NEW, *FOLDER, "{work}/images_bomb"], "decompression bomb"),
    "seed 99999999999999999999": (
        [*NEW, "--seed", "99999999999999999999"],
        "--seed must be an integer in 0..4294967295",
    ),
    "heartbeat 1e11": ([*NEW, "--heartbeat", "100000000000"], "--heartbeat must be at most"),
    "storage sqlite://": ([*NEW, "--storage", "sqlite://"], "in-memory database"),
    "checkpoint a directory": ([*NEW, "--checkpoint", "{work}/a_dir"], "is a directory"),
    "checkpoint a fifo": ([*NEW, "--checkpoint", "{work}/fifo"], "not a regular file"),
    "checkpoint /dev/zero": ([*NEW, "--checkpoint", "/dev/zero"], "not a regular file"),
    "checkpoint in JSON": (
        [*NEW, "--checkpoint", "{work}/weights.json"],
        "not a file saved with torch.save",
    ),
    "checkpoint with NaN weights": (
        [*NEW, "--checkpoint", "{work}/nan.pt"],
        "returns NaN or infinite logits on a data-shaped input (NaN or infinite weight values: 1)",
    ),
    "model output NaN": ([*NEW, "--model", "{work}/models.py:nan_out"], "NaN or infinite"),
    "evaluate unfinished run": (
        ["evaluate", "{work}/unfinished"],
        "has no pruned model: its fine-tune stage is not finished",
    ),
    "worker without study.db": (
        ["worker", "{work}/no_study", "--wait", "0"],
        "no study yet (no study.db)",
    ),
    "corrupt image in the test split": (
        [*NEW, *FOLDER, "{work}/images_bad_test"],
        "images_bad_test/val/b/0.png",
    ),
}


@pytest.mark.parametrize("name", list(MORE_CASES))
def test_more_bad_input_exits_2_with_one_line(
    name: str, work: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    args, message = MORE_CASES[name]
    new = tmp_path / "new"
    monkeypatch.chdir(tmp_path)
    argv = [a.format(work=work, new=new) for a in args]
    before = _digest(work / "done")
    copies = {d.name: _digest(d) for d in work.iterdir() if (d / "config.json").is_file()}
    capsys.readouterr()
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert message in lines[0] and "weights_only" not in lines[0]
    assert len(lines[0]) <= 520
    assert not (new / "config.json").exists()
    assert _digest(work / "done") == before
    assert {d: _digest(work / d) for d in copies} == copies  # nothing made, e.g. no study.db


@pytest.mark.parametrize("command", [["evaluate", "{work}/done"], NEW])
def test_ctrl_c_while_the_cli_starts_is_one_line(command: list[str], work: Path, tmp_path) -> None:
    # -X importtime reports each finished import on stderr: SIGINT lands while torch loads
    argv = [a.format(work=work, new=tmp_path / "new") for a in command]
    proc = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "iaprune.cli.main", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=ENV,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.rstrip().endswith("torch._C"):  # torch itself is still importing
            proc.send_signal(signal.SIGINT)
            break
    rest = proc.stderr.read()
    proc.wait(timeout=60)
    lines = [x for x in rest.splitlines() if not x.startswith("import time:")]
    assert proc.returncode == 130, rest[-2000:]
    assert lines == ["interrupted before the command started; nothing was changed"], lines
    assert not (tmp_path / "new").exists()


def _full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every checkpoint write goes to /dev/full (ENOSPC from the kernel, as on a full disk)."""

    def writer(fd: int):
        os.close(fd)
        return open("/dev/full", "wb")  # noqa: SIM115 - save_atomic closes it

    monkeypatch.setattr(checkpoint, "_writer", writer)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("stage", ["baseline", "finetune"])
def test_disk_full_while_saving_a_stage_is_one_line(
    stage: str, work: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    run = tmp_path / "run"
    if stage == "finetune":
        shutil.copytree(work / "done", run)
    before = _digest(run) if run.exists() else {}
    _full_disk(monkeypatch)
    capsys.readouterr()
    new_run = ["prune", "--run-dir", str(run), *TINY]
    # finetune with other settings than the finished run's, so that it trains and saves
    again = ["finetune", str(run), "--epochs", "2"]
    assert main(again if stage == "finetune" else new_run) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    partial = "pruned.partial.pt" if stage == "finetune" else "baseline.partial.pt"
    assert lines == [
        f"error: disk full writing {run / partial}: No space left on device; free some space, "
        "then continue with --resume"
    ]
    after = _digest(run)
    assert not [name for name in after if name.endswith(".tmp")]
    assert {k: v for k, v in after.items() if k in before} == before  # finished files kept


def test_out_of_memory_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    def baseline(self):  # torch's own allocation failure, on any machine
        return torch.empty(1 << 62, dtype=torch.uint8)

    monkeypatch.setattr(session_module.Session, "baseline", baseline)
    capsys.readouterr()
    assert main(["prune", "--run-dir", str(tmp_path / "run"), *TINY]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: out of memory (4294967296.0 GiB"), lines
