"""A throw-away PostgreSQL 15 cluster on 127.0.0.1, for tests and local runs."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

BIN = Path(os.environ.get("TAWASUL_PG_BIN", "/usr/lib/postgresql/15/bin"))


def available() -> bool:
    return (BIN / "initdb").exists() and (BIN / "pg_ctl").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """initdb + pg_ctl in a temporary directory; trust auth, fsync off (tests only)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tawasul-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        # The server refuses to run as root; the Debian package brings a `postgres` user.
        self._as_postgres = os.geteuid() == 0
        self.user = "postgres"

    def _run(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        command = [str(a) for a in args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    def start(self) -> None:
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        result = self._run(
            BIN / "initdb",
            "-D",
            str(self.data),
            "-U",
            self.user,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{result.stdout}\n{result.stderr}")
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off"
            f" -c unix_socket_directories={self.root} -c max_connections=200"
        )
        result = self._run(
            BIN / "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "30",
            "start",
        )
        if result.returncode != 0:
            log = (self.root / "server.log").read_text(errors="replace")
            raise RuntimeError(f"pg_ctl start failed:\n{result.stderr}\n{log}")

    def stop(self) -> None:
        self._run(BIN / "pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres", driver: str = "asyncpg") -> str:
        return f"postgresql+{driver}://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A fresh, empty database; returns its SQLAlchemy URL."""
        result = self._run(
            BIN / "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            self.user,
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            f'CREATE DATABASE "{name}"',
        )
        if result.returncode != 0:
            raise RuntimeError(f"CREATE DATABASE failed: {result.stderr}")
        return self.url(name)


def wait_ready(cluster: Cluster, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", cluster.port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("PostgreSQL did not accept connections")
