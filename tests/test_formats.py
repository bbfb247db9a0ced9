"""The format version of run files and specs: written, read back, migrated, refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iaprune.cli.main import main
from iaprune.errors import IAPruneError
from iaprune.formats import FORMAT_KEY, FORMAT_VERSION, MIGRATIONS, migrate, stamp
from iaprune.pruning import PruningSpec
from iaprune.rundir import LOCK_NAME, RunDir

RUN_JSON = ("config.json", "model.json", "search.json", "finetune.json", "report.json")


def test_every_json_object_of_a_finished_run_carries_the_version(tiny_run: Path) -> None:
    for name in (*RUN_JSON, "spec.json"):
        data = json.loads((tiny_run / name).read_text())
        assert data[FORMAT_KEY] == FORMAT_VERSION, name


def test_readers_get_the_object_without_the_version(tiny_run: Path) -> None:
    run = RunDir(tiny_run)
    for name in RUN_JSON:
        data = run.read_dict(name)
        assert FORMAT_KEY not in data
        on_disk = json.loads((tiny_run / name).read_text())
        assert data == {k: v for k, v in on_disk.items() if k != FORMAT_KEY}


def test_a_run_written_before_versions_still_opens(received_run: Path, capsys) -> None:
    """Format 0 (no key) is migrated: the report is rebuilt from the unversioned files."""
    for name in RUN_JSON:
        path = received_run / name
        data = json.loads(path.read_text())
        del data[FORMAT_KEY]
        path.write_text(json.dumps(data))
    assert main(["report", str(received_run)]) == 0
    assert (received_run / "report.html").is_file()


def _files(run: Path) -> dict[str, int]:
    """Each run file's modification time (the lock file is the one a command may touch)."""
    return {p.name: p.stat().st_mtime_ns for p in run.iterdir() if p.name != LOCK_NAME}


@pytest.mark.parametrize(
    ("name", "command"),
    [("config.json", "finetune"), ("search.json", "report"), ("report.json", "report")],
)
def test_a_newer_format_is_refused_in_one_line(
    received_run: Path, name: str, command: str, capsys
) -> None:
    path = received_run / name
    data = json.loads(path.read_text())
    data[FORMAT_KEY] = FORMAT_VERSION + 1
    path.write_text(json.dumps(data))
    before = _files(received_run)
    assert main([command, str(received_run)]) == 2
    assert _files(received_run) == before
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert name in err and "newer iaprune" in err and "upgrade iaprune" in err


@pytest.mark.parametrize("bad", [-1, "1", True, 1.5, None])
def test_an_invalid_version_is_a_one_line_error(bad: object) -> None:
    with pytest.raises(IAPruneError, match="is not a version"):
        migrate({FORMAT_KEY: bad, "a": 1}, where="x.json")


def test_migrations_run_in_order_from_the_files_version(monkeypatch) -> None:
    """Each step sees the previous step's output; the current format is left alone."""
    seen: list[int] = []

    def step(v: int):
        def upgrade(data: dict) -> dict:
            seen.append(v)
            return {**data, "steps": [*data.get("steps", []), v]}

        return upgrade

    monkeypatch.setattr("iaprune.formats.FORMAT_VERSION", 3)
    monkeypatch.setattr("iaprune.formats.MIGRATIONS", {0: step(0), 1: step(1), 2: step(2)})
    assert migrate({"a": 1}, where="x") == {"a": 1, "steps": [0, 1, 2]}
    assert migrate({FORMAT_KEY: 2, "a": 1}, where="x") == {"a": 1, "steps": [2]}
    assert migrate({FORMAT_KEY: 3, "a": 1}, where="x") == {"a": 1}
    assert seen == [0, 1, 2, 2]


def test_every_older_format_has_a_migration() -> None:
    assert sorted(MIGRATIONS) == list(range(FORMAT_VERSION))


def test_stamp_puts_the_version_first_and_replaces_an_old_one() -> None:
    assert list(stamp({"b": 1, FORMAT_KEY: 0})) == [FORMAT_KEY, "b"]
    assert stamp({"b": 1})[FORMAT_KEY] == FORMAT_VERSION


def test_spec_files_round_trip_and_refuse_newer_formats(tmp_path: Path) -> None:
    spec = PruningSpec(keep={"a": 2}, original={"a": 4}, kept_indices={"a": [0, 3]})
    path = tmp_path / "spec.json"
    spec.save(path)
    assert json.loads(path.read_text())[FORMAT_KEY] == FORMAT_VERSION
    assert PruningSpec.load(path) == spec
    path.write_text(json.dumps(spec.to_dict()))  # a spec from before versions
    assert PruningSpec.load(path) == spec
    path.write_text(json.dumps({**spec.to_dict(), FORMAT_KEY: FORMAT_VERSION + 1}))
    with pytest.raises(IAPruneError, match="newer iaprune"):
        PruningSpec.load(path)
    path.write_text("[1, 2]")
    with pytest.raises(IAPruneError, match="not a JSON object"):
        PruningSpec.load(path)


def test_records_read_straight_from_their_files_are_accepted(tiny_run: Path) -> None:
    """``from_dict`` takes a file's object with its version (a script's ``json.loads``)."""
    from iaprune.config import RunConfig
    from iaprune.search import SearchResult

    run = RunDir(tiny_run)
    raw = {n: json.loads((tiny_run / n).read_text()) for n in ("config.json", "search.json")}
    assert RunConfig.from_dict(raw["config.json"]) == RunConfig.from_dict(
        run.read_dict("config.json")
    )
    assert SearchResult.from_dict(raw["search.json"]) == SearchResult.load(run)
    spec = json.loads((tiny_run / "spec.json").read_text())
    assert PruningSpec.from_dict(spec) == PruningSpec.load(tiny_run / "spec.json")
    newer = {**raw["config.json"], FORMAT_KEY: FORMAT_VERSION + 1}
    with pytest.raises(IAPruneError, match="newer iaprune"):
        RunConfig.from_dict(newer)
