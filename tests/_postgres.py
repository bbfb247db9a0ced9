"""A throwaway PostgreSQL cluster for the test session (Debian's ``postgresql`` package).

:func:`start` runs ``initdb`` into a temporary folder and ``pg_ctl start`` on a free port
with its socket in that folder (no TCP listener); :func:`stop` shuts it down and
:func:`serve` starts it again. As root the server runs as the ``postgres`` user
(PostgreSQL refuses root). When the binaries are missing, ``.ci/run`` installs them; here
the caller skips with :data:`MISSING`.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
from pathlib import Path

MISSING = (
    "PostgreSQL server binaries not found (install Debian's postgresql package: "
    "apt-get install -y postgresql, as .ci/run does)"
)


def bindir() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``, if PostgreSQL is installed."""
    for name in ("initdb", "pg_ctl"):
        found = shutil.which(name)
        if found and Path(found).resolve().parent.joinpath("initdb").is_file():
            return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user(cmd: list[str]) -> list[str]:
    """Run ``cmd`` as ``postgres`` when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


def start(root: Path) -> tuple[str, Path]:
    """Start a cluster under ``root`` (a folder the server user can enter, e.g. from
    ``tempfile.mkdtemp``); returns (SQLAlchemy URL, data directory)."""
    bins = bindir()
    if bins is None:
        raise FileNotFoundError(MISSING)
    data, sock = root / "data", root / "sock"
    sock.mkdir(parents=True)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    run = {"check": True, "capture_output": True, "text": True}
    subprocess.run(
        _as_server_user([str(bins / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]),
        **run,
    )
    port = _free_port()
    serve(root, port)
    subprocess.run(
        [str(bins / "createdb"), "-h", str(sock), "-p", str(port), "-U", "postgres", "iaprune"],
        **run,
    )
    return f"postgresql+psycopg://postgres@/iaprune?host={sock}&port={port}", data


def serve(root: Path, port: int) -> None:
    """``pg_ctl start`` the cluster initialised by :func:`start` under ``root`` (again after
    :func:`stop`), on ``port`` and its socket folder ``root/sock``."""
    bins = bindir()
    assert bins is not None
    options = f"-k {root / 'sock'} -p {port} -c listen_addresses='' -c fsync=off"
    subprocess.run(
        _as_server_user(
            [
                str(bins / "pg_ctl"),
                "-D",
                str(root / "data"),
                "-o",
                options,
                "-w",
                "-l",
                str(root / "log"),
                "start",
            ]
        ),
        check=True,
        capture_output=True,
        text=True,
    )


def stop(data: Path) -> None:
    """Stop the cluster (fast shutdown)."""
    bins = bindir()
    assert bins is not None
    subprocess.run(
        _as_server_user([str(bins / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
        capture_output=True,
        check=False,
    )
