"""Where a figure came from: the machine, the versions, the command; and the report file."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from benchmarks._common import Table
from benchmarks._postgres import PostgresBench

REPO = Path(__file__).resolve().parent.parent


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / (1 << 20):.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _git_rev() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        rev = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", "src")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{rev}{' (src modified)' if dirty else ''}"


def command_line() -> str:
    return " ".join(["python -m benchmarks", *sys.argv[1:]])


def header(backend: str, quick: bool, reps: int, pg: PostgresBench | None,
           extra: list[str] | None = None) -> str:
    """`extra`: more facts, one list item each (the peers' versions)."""
    lines = [
        f"## flowexec benchmarks ({backend}{', quick' if quick else ''})",
        "",
        f"- command: `{command_line()}`",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}; {reps} repetitions per figure, "
        "shown as median (min-max)",
        f"- machine: {os.cpu_count()} cores, {_ram_gib()} RAM, {_cpu_model()}, "
        f"{platform.system()} {platform.release()}; load average at start "
        f"{os.getloadavg()[0]:.2f}",
        f"- versions: Python {platform.python_version()}, "
        + (f"PostgreSQL {pg.server_version}, " if pg else "")
        + f"SQLite {sqlite3.sqlite_version}, psycopg {psycopg.__version__} "
        f"(libpq {psycopg.pq.version()}), flowexec {_git_rev()}",
    ]
    if pg is not None:
        settings = ", ".join(f"{k}={v}" for k, v in pg.settings.items())
        lines.append(f"- PostgreSQL: {pg.origin}, {settings}; client and server share the machine")
    lines.extend(f"- {line}" for line in extra or [])
    lines.append("")
    return "\n".join(lines)


class Report:
    """Prints each table as it is measured and keeps them for the output file."""

    def __init__(self, head: str, quick: bool, out: Path | None) -> None:
        self.quick = quick
        self.out = out
        self.parts = [head]
        print(head, flush=True)
        self._flush()

    def add(self, table: Table) -> None:
        text = table.markdown(self.quick)
        self.parts.append(text)
        print(text, flush=True)
        self._flush()

    def error(self, workload: str, message: str) -> None:
        text = f"### {workload}\n\n**failed:** `{message}`\n"
        self.parts.append(text)
        print(text, flush=True)
        self._flush()

    def _flush(self) -> None:
        if self.out is not None:
            self.out.write_text("\n".join(self.parts))
