"""Re-derive the final choice of finished searches with the current choice rule.

The final choice runs after the trials and does not change them, so a finished search
resumed without its search.json goes straight to the choice: cached finalist scores are
reused, and only scores the new rule adds (every warm start scored twice) are computed.
Copies SRC/runs/KEY to DST/runs/KEY for every searching row, resumes the search there,
and prints the old and new choice. Usage: python rechoice.py SRC DST [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import shutil
from pathlib import Path

import torch

from iaprune import Session


def rechoose(task: tuple[str, str]) -> dict:
    src, dst = map(Path, task)
    torch.set_num_threads(1)
    old = json.loads((src / "search.json").read_text())
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("pruned*.pt"))
    (dst / "search.json").unlink()
    (dst / "spec.json").unlink(missing_ok=True)
    session = Session.open(dst)
    result = session.search(session.baseline(), resume=True)
    return {
        "key": dst.name,
        "old": old["best_trial"],
        "new": result.best_trial,
        "changed": old["spec"]["keep"] != result.spec.keep,
        "reason": result.selection["reason"],
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)
    p.add_argument("--jobs", type=int, default=2)
    a = p.parse_args()
    rows = [json.loads(x) for x in (a.src / "rows.jsonl").read_text().splitlines() if x.strip()]
    keys = [r["key"] for r in rows if r["method"] in ("iaprune", "tpe", "random")]
    tasks = [(str(a.src / "runs" / k), str(a.dst / "runs" / k)) for k in keys]
    with mp.get_context("spawn").Pool(a.jobs) as pool:
        for out in pool.imap_unordered(rechoose, tasks):
            print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
