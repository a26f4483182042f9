"""A real PostgreSQL server for the tests: started on a free loopback port with a temporary
data directory, stopped and removed at the end of the session.

The binaries come from PATH (``pg_ctl``, ``initdb``) or the newest
``/usr/lib/postgresql/*/bin`` (Debian's ``postgresql`` package). ``initdb`` refuses to
run as root, so as root the server runs as the ``postgres`` user (``runuser``), which owns
the temporary directory. Without the binaries the tests that need the server are skipped,
unless ``TACTFUL_REQUIRE_POSTGRES=1`` (CI), where they fail instead.

Each test gets its own database (:meth:`PgServer.database`), made from ``template0`` and
dropped afterwards: 30-90 ms to create and 10-20 ms to drop on this machine, cheap
enough to spare the tests a schema per test and its search_path.
"""

from __future__ import annotations

import itertools
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

__all__ = ["PgServer", "find_binaries", "pg_server", "start_server"]

REQUIRE = "TACTFUL_REQUIRE_POSTGRES"


def find_binaries() -> Path | None:
    """The folder holding ``pg_ctl`` and ``initdb``, or None."""
    on_path = shutil.which("pg_ctl")
    if on_path:
        folder = Path(on_path).resolve().parent
        if (folder / "initdb").exists():
            return folder

    def version(p: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", p.parent.name))

    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=version)
    return found[-1].parent if found else None


def _reachable(folder: Path) -> bool:
    """Whether any user may pass through ``folder`` and each of its parents."""
    return all(p.stat().st_mode & 0o001 for p in (folder, *folder.parents))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    """A running server; ``conninfo`` reaches its ``postgres`` database as superuser."""

    bindir: Path
    root: Path
    port: int = 0
    as_user: list[str] = field(default_factory=list)  # ["runuser", "-u", "postgres", "--"]
    version: int = 0  # the server's, as libpq reports it (150004 for 15.4)
    _count: Iterator[int] = field(default_factory=itertools.count)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def conninfo(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.as_user, *args], capture_output=True, text=True, timeout=60, check=False
        )

    def start(self) -> None:
        initdb = self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        )
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed: {initdb.stderr or initdb.stdout}")
        for _ in range(3):  # the free port may be taken between looking and listening
            self.port = _free_port()
            started = self._launch()
            if started.returncode == 0:
                with psycopg.connect(self.conninfo()) as conn:
                    self.version = conn.info.server_version
                return
        raise RuntimeError(self._failed(started))

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def _launch(self) -> subprocess.CompletedProcess[str]:
        """``pg_ctl start`` on ``self.port`` and the data directory, waiting until ready."""
        options = (
            f"-p {self.port} -h 127.0.0.1 -k {self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        return self._run(
            str(self.bindir / "pg_ctl"),
            "start",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            "30",
            "-o",
            options,
        )

    def _failed(self, run: subprocess.CompletedProcess[str]) -> str:
        tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        return f"pg_ctl start failed: {run.stderr or run.stdout}\n{tail}"

    def halt(self, mode: str = "fast") -> None:
        """Stop the server but keep its data directory and port (a database outage, for
        the fault tests): ``fast`` ends every session, as a shutdown does; ``immediate``
        as a crash does. :meth:`resume` starts it again."""
        stopped = self._run(
            str(self.bindir / "pg_ctl"), "stop", "-D", str(self.data), "-w", "-m", mode
        )
        if stopped.returncode != 0:
            raise RuntimeError(f"pg_ctl stop failed: {stopped.stderr or stopped.stdout}")

    def resume(self) -> None:
        """Start a :meth:`halt`-ed server again on the same port and data directory."""
        started = self._launch()
        if started.returncode != 0:
            raise RuntimeError(self._failed(started))

    def stop(self) -> None:
        if self.data.exists():
            self._run(str(self.bindir / "pg_ctl"), "stop", "-D", str(self.data), "-m", "immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def execute(self, sql: str, dbname: str = "postgres") -> None:
        with psycopg.connect(self.conninfo(dbname), autocommit=True) as conn:
            conn.execute(sql)

    @contextmanager
    def database(self) -> Iterator[str]:
        """A new, empty database for one test (dropped afterwards): its conninfo."""
        name = f"t_{os.getpid()}_{next(self._count)}"
        # copying template0's files beats writing them through the WAL (15+; fsync is off)
        strategy = " STRATEGY FILE_COPY" if self.version >= 150000 else ""
        self.execute(f"CREATE DATABASE {name} TEMPLATE template0{strategy}")
        try:
            yield self.conninfo(name)
        finally:
            self.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def start_server() -> PgServer:
    """Start a server, or skip (fail with TACTFUL_REQUIRE_POSTGRES=1) without binaries."""
    bindir = find_binaries()
    if bindir is None:
        why = "no PostgreSQL binaries (pg_ctl, initdb) on PATH or in /usr/lib/postgresql/*/bin"
        if os.environ.get(REQUIRE) == "1":
            pytest.fail(f"{REQUIRE}=1 but {why}")
        pytest.skip(why)
    as_user: list[str] = []
    where: str | None = None
    if os.geteuid() == 0:  # initdb refuses root: run the server as the postgres user
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            why = "running as root, and there is no 'postgres' user to run initdb as"
            if os.environ.get(REQUIRE) == "1":
                pytest.fail(f"{REQUIRE}=1 but {why}")
            pytest.skip(why)
        as_user = ["runuser", "-u", "postgres", "--"]
        if not _reachable(Path(tempfile.gettempdir())):
            where = "/tmp"  # a TMPDIR only root may enter would lock the server out
    root = Path(tempfile.mkdtemp(prefix="tactful-pg-", dir=where))
    if as_user:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
    server = PgServer(bindir, root, as_user=as_user)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = start_server()
    try:
        yield server
    finally:
        server.stop()
