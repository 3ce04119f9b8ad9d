"""A real PgBouncer in front of the test PostgreSQL: transaction pooling, a few server
connections, on a free port, started and stopped by the tests.

Two aliases: the test database's own name, pooled per transaction (the URL flowexec is given
"with nothing else configured"), and `<name>_session`, pooled per session (the optional
`session_url` for listening). PostgreSQL may be reached over TCP or a unix-socket directory
(pgserver in CI). Without the `pgbouncer` program the runs through it are skipped, saying how
to get it.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

PROGRAM_PATHS = ("pgbouncer", "/usr/sbin/pgbouncer")
HOW_TO_GET = (
    "PgBouncer is not installed: `apt-get install -y pgbouncer` (Debian/Ubuntu; .ci/run does "
    "it) runs these tests through a transaction pooler too"
)
SERVER_CONNECTIONS = 4
"""`default_pool_size`: every client of the tests shares these few server connections."""
READY_WITHIN_S = 15.0


def pgbouncer_program() -> str | None:
    for candidate in PROGRAM_PATHS:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class PgBouncer:
    """One PgBouncer process; `restart()` keeps its port, so URLs stay valid."""

    def __init__(
        self,
        target_url: str,
        workdir: Path,
        *,
        listen_addr: str = "127.0.0.1",
        host: str = "127.0.0.1",
        server_connections: int = SERVER_CONNECTIONS,
    ) -> None:
        program = pgbouncer_program()
        assert program is not None, HOW_TO_GET
        self.program = program
        self.target = conninfo_to_dict(target_url)
        self.dbname = str(self.target.get("dbname") or os.environ.get("PGDATABASE") or "postgres")
        self.user = str(self.target.get("user") or os.environ.get("PGUSER") or getpass.getuser())
        self.workdir = workdir
        self.listen_addr = listen_addr
        self.host = host
        self.port = free_port()
        self.server_connections = server_connections
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "pgbouncer.log"

    @property
    def url(self) -> str:
        """Through the transaction-pooled alias."""
        return self.url_at(self.host)

    def url_at(self, host: str) -> str:
        """The transaction-pooled alias at another of its listening addresses."""
        return f"postgresql://{self.user}@{host}:{self.port}/{self.dbname}"

    @property
    def session_url(self) -> str:
        """Through the session-pooled alias, for LISTEN."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}_session"

    def _server(self) -> str:
        keys = {k: self.target[k] for k in ("host", "port", "password") if self.target.get(k)}
        return make_conninfo(**keys, dbname=self.dbname, user=self.user)

    def _run_as(self) -> list[str]:
        """PgBouncer refuses to run as root: as the owner of a socket directory it must reach,
        else as nobody."""
        if os.geteuid() != 0:
            return []
        host = str(self.target.get("host") or "")
        owner = pwd.getpwuid(os.stat(host).st_uid).pw_name if host.startswith("/") else "nobody"
        return ["-u", owner]

    def _write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)
        users = self.workdir / "users.txt"
        users.write_text(f'"{self.user}" ""\n')
        server = self._server()
        config = self.workdir / "pgbouncer.ini"
        config.write_text(
            "[databases]\n"
            f"{self.dbname} = {server}\n"
            f"{self.dbname}_session = {server} pool_mode=session\n"
            "[pgbouncer]\n"
            f"listen_addr = {self.listen_addr}\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {users}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {self.server_connections}\n"
            "max_client_conn = 2000\n"
            "server_login_retry = 1\n"
        )
        for path in (users, config):
            path.chmod(0o644)
        return config

    def start(self) -> None:
        config = self._write_config()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [self.program, *self._run_as(), str(config)],
                stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + READY_WITHIN_S
        while True:
            try:
                with psycopg.connect(self.url, connect_timeout=2, autocommit=True) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"PgBouncer did not start: {self.log_path.read_text()[-2000:]}"
                    ) from None
                time.sleep(0.1)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """Gone at once, every client and server connection with it."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            self.process.wait()
            self.process = None

    def restart(self) -> None:
        self.kill()
        self.start()
