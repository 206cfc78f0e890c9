"""A throw-away PostgreSQL cluster for the tests: initdb + pg_ctl on a Unix socket.

Debian's ``postgresql`` package puts its server binaries under
``/usr/lib/postgresql/<version>/bin`` (not on PATH). The cluster lives in a temporary
folder, listens on a Unix socket there (no TCP port), trusts local connections, and is run
by the ``postgres`` system user when the tests run as root (the server refuses root).
One cluster serves a whole test session; each test gets a database of its own.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SERVER_USER = "postgres"


def find_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/*/bin`` with initdb, or one on PATH."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


@dataclass
class Cluster:
    """A running cluster: its data folder, socket folder and the command prefix."""

    root: Path
    bindir: Path
    prefix: list[str]  # e.g. ["runuser", "-u", "postgres", "--"] when we are root

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL of a database of the cluster, over the Unix socket."""
        return f"postgresql+psycopg://{SERVER_USER}@/{database}?host={self.socket_dir}"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.prefix, *args], capture_output=True, text=True, timeout=timeout, check=False
        )

    def stop(self) -> None:
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.root / "data"),
            "-m",
            "immediate",
            "-w",
            "stop",
        )
        shutil.rmtree(self.root, ignore_errors=True)


def start_cluster() -> tuple[Cluster | None, str]:
    """Start a cluster; return it (None on failure) and why it could not start."""
    bindir = find_bindir()
    if bindir is None:
        return None, "no PostgreSQL server binaries (install Debian's postgresql)"
    prefix: list[str] = []
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam(SERVER_USER)
        except KeyError:
            return None, f"running as root and there is no {SERVER_USER!r} user to run the server"
        runuser = shutil.which("runuser") or shutil.which("su")
        if runuser is None:
            return None, "running as root without runuser to start the server as postgres"
        prefix = [runuser, "-u", SERVER_USER, "--"]
    root = Path(tempfile.mkdtemp(prefix="initlab-pg-"))
    (root / "socket").mkdir()
    if prefix:
        for path in (root, root / "socket"):
            os.chown(path, user.pw_uid, user.pw_gid)
    cluster = Cluster(root, bindir, prefix)
    data = str(root / "data")
    init = cluster._run(
        str(bindir / "initdb"),
        "-D",
        data,
        "-U",
        SERVER_USER,
        "--auth=trust",
        "-E",
        "UTF8",
        "--no-sync",
    )
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        return None, f"initdb failed: {init.stderr.strip().splitlines()[-1:]}"
    options = f"-k {root / 'socket'} -c listen_addresses='' -c fsync=off -c max_connections=100"
    start = cluster._run(
        str(bindir / "pg_ctl"),
        "-D",
        data,
        "-o",
        options,
        "-l",
        str(root / "server.log"),
        "-w",
        "-t",
        "30",
        "start",
    )
    if start.returncode != 0:
        log = (
            (root / "server.log").read_text(errors="replace")
            if (root / "server.log").exists()
            else ""
        )
        shutil.rmtree(root, ignore_errors=True)
        return None, f"pg_ctl start failed: {(start.stderr or log).strip().splitlines()[-1:]}"
    return cluster, ""


def create_database(cluster: Cluster, name: str) -> str:
    """Create database ``name`` on the cluster; return its URL."""
    from sqlalchemy import create_engine, text

    engine = create_engine(cluster.url(), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return cluster.url(name)
