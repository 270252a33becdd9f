"""A throwaway PostgreSQL cluster for the test session.

The cluster lives in a fresh temporary directory, listens only on a Unix socket inside that
directory (``listen_addresses = ''``) and runs with durability switched off for speed. The server
process is a child of the test process (reaped on ``stop()``), not a ``pg_ctl start`` daemon.
PostgreSQL refuses to run as root, so when the tests run as root (as CI does) ``initdb``,
``postgres`` and ``pg_ctl`` run as the ``postgres`` system user, and the temporary directory is
handed to that user.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import psycopg
from psycopg import sql

__all__ = ["PostgresCluster", "find_postgres_bin_dir"]

_SUPERUSER = "postgres"
_PORT = 5432  # Only names the socket file; the socket directory is private to this cluster.
_DB_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# sockaddr_un.sun_path is 108 bytes on Linux (104 on macOS), including the terminating NUL.
_MAX_SOCKET_PATH = 100
_LOG_TAIL_LINES = 40
_COMMAND_TIMEOUT = 120.0
_START_TIMEOUT = 60.0
_MIN_TMPFS_FREE = 1024**3

_SETTINGS = {
    "listen_addresses": "''",
    "port": str(_PORT),
    "fsync": "off",
    "full_page_writes": "off",
    "synchronous_commit": "off",
    "max_connections": "100",
}


def find_postgres_bin_dir() -> Path | None:
    """Directory holding ``initdb``, ``pg_ctl`` and ``postgres``.

    ``initdb`` on PATH wins (symlinks resolved, so Debian's /usr/lib/postgresql/N/bin is found
    through a /usr/local/bin link); otherwise the newest /usr/lib/postgresql/*/bin.
    """
    initdb = shutil.which("initdb")
    if initdb is not None:
        bin_dir = Path(initdb).resolve().parent
        if _has_server_tools(bin_dir):
            return bin_dir
    candidates: list[tuple[int, Path]] = []
    for bin_dir in Path("/usr/lib/postgresql").glob("*/bin"):
        version = bin_dir.parent.name
        if version.isdigit() and _has_server_tools(bin_dir):
            candidates.append((int(version), bin_dir))
    if not candidates:
        return None
    return max(candidates)[1]


def _has_server_tools(bin_dir: Path) -> bool:
    return all((bin_dir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres"))


def _default_parent_dir() -> Path:
    """Where the cluster directory goes: tmpfs if it has room, else the system temp dir.

    On a disk-backed /tmp every CREATE DATABASE costs ~0.3 s even with fsync off; on tmpfs it is
    ~0.02 s. Docker's default /dev/shm is only 64 MB, hence the free-space check.
    """
    shm = Path("/dev/shm")
    try:
        stat = os.statvfs(shm)
    except OSError:
        stat = None
    if (
        stat is not None
        and stat.f_bavail * stat.f_frsize >= _MIN_TMPFS_FREE
        and os.access(shm, os.W_OK | os.X_OK)
    ):
        return shm
    parent = Path(tempfile.gettempdir())
    # The socket path must fit in sun_path; a long $TMPDIR (macOS) falls back to /tmp.
    if len(str(parent)) + len("/shelflife-pg-XXXXXXXX/.s.PGSQL.5432") > _MAX_SOCKET_PATH:
        parent = Path("/tmp")
    return parent


def _clean_env() -> dict[str, str]:
    """The current environment without ``PG*`` variables, which would retarget the tools."""
    return {key: value for key, value in os.environ.items() if not key.startswith("PG")}


class PostgresCluster:
    """One PostgreSQL cluster in a private temporary directory, reachable over a Unix socket."""

    def __init__(
        self,
        bin_dir: Path | None = None,
        parent_dir: Path | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        """``bin_dir``: where initdb/pg_ctl/postgres live (default: ``find_postgres_bin_dir()``).
        ``parent_dir``: where the cluster's temporary directory goes (default: /dev/shm when it
        has room, else the system temp dir). ``settings``: postgresql.conf values that replace
        the test defaults (a benchmark turns durability back on with them).
        """
        self._bin_dir = bin_dir
        self._parent_dir = parent_dir
        self._settings = dict(_SETTINGS, **(settings or {}))
        self._run_as: str | None = _SUPERUSER if os.geteuid() == 0 else None
        self._base_dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._started = False
        self.startup_seconds: float | None = None

    # -- public API -------------------------------------------------------------------------------

    @property
    def user(self) -> str:
        """The database superuser every URL connects as (``trust`` auth on the socket)."""
        return _SUPERUSER

    @property
    def port(self) -> int:
        return _PORT

    @property
    def socket_dir(self) -> Path:
        """Directory holding the ``.s.PGSQL.<port>`` socket; libpq's ``host``."""
        return self._require_base_dir()

    @property
    def data_dir(self) -> Path:
        """The cluster's PGDATA; ``base/`` holds every database's table, TOAST and index files
        (owned by the ``postgres`` user when the tests run as root, who can read them)."""
        return self._require_base_dir() / "data"

    @property
    def log_file(self) -> Path:
        return self._require_base_dir() / "postgres.log"

    @property
    def running(self) -> bool:
        return self._started

    def start(self) -> None:
        """Create and start the cluster. Raises ``RuntimeError`` (with the log tail) on failure."""
        if self._started:
            return
        began = time.perf_counter()
        try:
            bin_dir = self._bin_dir or find_postgres_bin_dir()
            if bin_dir is None:
                raise RuntimeError(
                    "PostgreSQL server binaries not found: no initdb/pg_ctl on PATH or under "
                    "/usr/lib/postgresql/*/bin (Debian: apt-get install postgresql)"
                )
            self._bin_dir = bin_dir
            self._make_base_dir()
            self._initdb()
            self._configure()
            self._spawn_postgres()
        except BaseException as exc:
            self._started = True  # let stop() clean up whatever got that far
            self.stop()
            if isinstance(exc, RuntimeError):
                raise
            if isinstance(exc, (OSError, subprocess.SubprocessError)):
                raise RuntimeError(f"could not start PostgreSQL test cluster: {exc}") from exc
            raise
        self._started = True
        atexit.register(self.stop)
        self.startup_seconds = time.perf_counter() - began

    def stop(self) -> None:
        """Stop the server immediately and delete the cluster directory. Idempotent."""
        base_dir = self._base_dir
        if base_dir is None:
            self._started = False
            return
        try:
            if self._started and (self.data_dir / "postmaster.pid").exists():
                self._run(
                    [
                        str(self._tool("pg_ctl")),
                        "stop",
                        "--pgdata",
                        str(self.data_dir),
                        "--mode",
                        "immediate",
                        "--wait",
                        "--silent",
                    ],
                    check=False,
                )
        finally:
            self._reap()
            self._started = False
            self._base_dir = None
            shutil.rmtree(base_dir, ignore_errors=True)
            atexit.unregister(self.stop)

    def _reap(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            # pg_ctl could not stop it: signal the postmaster (our grandchild under runuser).
            pid = _postmaster_pid(self.data_dir / "postmaster.pid")
            if pid is not None:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGQUIT)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def url(self, name: str) -> str:
        """SQLAlchemy URL for database ``name`` on this cluster (psycopg 3 driver, Unix socket)."""
        _check_db_name(name)
        return f"postgresql+psycopg://{self.user}@/{name}?host={self.socket_dir}&port={self.port}"

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create database ``name`` (empty, or a copy of database ``template``, which must
        have no open connections) and return its SQLAlchemy URL."""
        _check_db_name(name)
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            _check_db_name(template)
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        with self._admin_connection() as conn:
            conn.execute(statement)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name``, terminating any connections still open to it."""
        _check_db_name(name)
        with self._admin_connection() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def database_dir(self, name: str) -> Path:
        """The folder under ``data_dir / "base"`` that holds database ``name``'s files."""
        _check_db_name(name)
        with self._admin_connection() as conn:
            row = conn.execute("SELECT oid FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if row is None:
            raise ValueError(f"no database {name!r} in the test cluster")
        return self.data_dir / "base" / str(row[0])

    def checkpoint(self) -> None:
        """Write every changed page to the files under ``data_dir`` (a superuser command), so
        that tests can read what a database holds on disk."""
        with self._admin_connection() as conn:
            conn.execute("CHECKPOINT")

    def __enter__(self) -> PostgresCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals --------------------------------------------------------------------------------

    def _require_base_dir(self) -> Path:
        if self._base_dir is None:
            raise RuntimeError("PostgreSQL test cluster is not started")
        return self._base_dir

    def _tool(self, name: str) -> Path:
        assert self._bin_dir is not None
        return self._bin_dir / name

    def _make_base_dir(self) -> None:
        parent = self._parent_dir or _default_parent_dir()
        self._base_dir = Path(tempfile.mkdtemp(prefix="shelflife-pg-", dir=parent))
        if self._run_as is not None:
            try:
                account = pwd.getpwnam(self._run_as)
            except KeyError:
                raise RuntimeError(
                    f"running as root, but there is no {self._run_as!r} system user to run "
                    "PostgreSQL as (PostgreSQL refuses to run as root)"
                ) from None
            os.chown(self._base_dir, account.pw_uid, account.pw_gid)

    def _initdb(self) -> None:
        self._run(
            [
                str(self._tool("initdb")),
                "--pgdata",
                str(self.data_dir),
                "--username",
                self.user,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
            what="initdb",
        )

    def _configure(self) -> None:
        settings = dict(self._settings, unix_socket_directories=f"'{self.socket_dir}'")
        lines = "".join(f"{key} = {value}\n" for key, value in settings.items())
        # Appending keeps the file's owner (the postgres user when running as root).
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# shelflife test cluster\n" + lines)

    def _spawn_postgres(self) -> None:
        # The server is started as our own child (not daemonised by ``pg_ctl start``) so that we
        # reap it ourselves; an orphaned postmaster would linger as a zombie under an init that
        # does not reap. Its own session keeps a terminal Ctrl-C from reaching it directly.
        args = self._as_postgres_user([str(self._tool("postgres")), "-D", str(self.data_dir)])
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                args,
                cwd=self._base_dir,
                env=_clean_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + _START_TIMEOUT
        pid_file = self.data_dir / "postmaster.pid"
        while True:
            returncode = self._process.poll()
            if returncode is not None:
                self._process = None
                raise RuntimeError(
                    self._failure_message(f"postgres exited with code {returncode}", args)
                )
            if _postmaster_ready(pid_file):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    self._failure_message(f"postgres not ready after {_START_TIMEOUT:.0f}s", args)
                )
            time.sleep(0.02)

    def _admin_connection(self) -> psycopg.Connection[tuple[object, ...]]:
        if not self._started:
            raise RuntimeError("PostgreSQL test cluster is not started")
        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user=self.user,
            dbname="postgres",
            autocommit=True,
        )

    def _run(
        self, args: Sequence[str], *, what: str = "command", check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        args = self._as_postgres_user(args)
        result = subprocess.run(
            args,
            cwd=self._base_dir,  # the postgres user may not be able to enter the caller's cwd
            env=_clean_env(),
            capture_output=True,
            text=True,
            timeout=_COMMAND_TIMEOUT,
            check=False,
        )
        if check and result.returncode != 0:
            what = f"{what} failed with exit code {result.returncode}"
            raise RuntimeError(self._failure_message(what, args, result))
        return result

    def _as_postgres_user(self, args: Sequence[str]) -> list[str]:
        if self._run_as is None:
            return list(args)
        if shutil.which("runuser") is not None:
            return ["runuser", "-u", self._run_as, "--", *args]
        return ["su", "-s", "/bin/sh", self._run_as, "-c", f"exec {shlex.join(args)}"]

    def _failure_message(
        self,
        what: str,
        args: Sequence[str],
        result: subprocess.CompletedProcess[str] | None = None,
    ) -> str:
        parts = [f"PostgreSQL test cluster: {what}", f"command: {shlex.join(args)}"]
        if result is not None:
            output = (result.stdout + result.stderr).strip()
            if output:
                parts.append("output:\n" + _tail(output))
        if self._base_dir is not None and self.log_file.exists():
            log = self.log_file.read_text(encoding="utf-8", errors="replace").strip()
            if log:
                parts.append(f"server log tail ({self.log_file}):\n" + _tail(log))
        return "\n".join(parts)


def _postmaster_pid_lines(pid_file: Path) -> list[str]:
    try:
        return pid_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def _postmaster_ready(pid_file: Path) -> bool:
    """``pg_ctl -w``'s test: the status line (8th) of postmaster.pid says ``ready``."""
    lines = _postmaster_pid_lines(pid_file)
    return len(lines) >= 8 and lines[7].strip() == "ready"


def _postmaster_pid(pid_file: Path) -> int | None:
    lines = _postmaster_pid_lines(pid_file)
    if lines and lines[0].strip().isdigit():
        return int(lines[0])
    return None


def _tail(text: str) -> str:
    return "\n".join(text.splitlines()[-_LOG_TAIL_LINES:])


def _check_db_name(name: str) -> None:
    if _DB_NAME.fullmatch(name) is None:
        raise ValueError(f"not a plain lower-case database name: {name!r}")
