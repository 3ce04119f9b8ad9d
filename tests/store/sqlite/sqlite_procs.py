"""Children of the SQLite multi-process tests: `python sqlite_procs.py COMMAND URL PREFIX ...`.

Each command opens its own store (its own connection, thread and OS process), prints `ready`,
waits for a line on stdin when told to (so that several processes start together), does its
work and prints one JSON line with the result. Errors are printed as JSON too, with their type,
so the parent can assert that no "database is locked" ever escaped.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from flowexec import open_store
from flowexec.model import ExecutionStatus, UpdateExecutionStatusParams


def _say(payload: Any) -> None:
    print(json.dumps(payload), flush=True)


def _wait_for_go() -> None:
    _say("ready")
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("expected 'go' on stdin")


async def drain(url: str, prefix: str, worker: str, busy_timeout_ms: str) -> dict[str, Any]:
    """claim_next(limit=10) until the queue is empty, finishing each claim fenced."""
    async with await open_store(
        url, table_prefix=prefix, migrate=False, busy_timeout_ms=int(busy_timeout_ms)
    ) as store:
        _wait_for_go()
        claimed: list[str] = []
        while claims := await store.claim_next(worker, 60_000, limit=10):
            for claim in claims:
                claimed.append(claim.execution_id)
                for status in (ExecutionStatus.RUNNING, ExecutionStatus.COMPLETED):
                    await store.update_execution_status(
                        UpdateExecutionStatusParams(
                            claim.execution_id, status, worker_id=worker, epoch=claim.epoch
                        )
                    )
        return {"claimed": claimed}


async def hold_lock(url: str, prefix: str, lock_id: str) -> dict[str, Any]:
    """Take the recovery lock, say so, and hold it until killed."""
    store = await open_store(url, table_prefix=prefix, migrate=False)
    acquired = await store.try_acquire_recovery_lock(int(lock_id))
    _say({"acquired": acquired})
    while True:
        await asyncio.sleep(3600)


async def migrate(url: str, prefix: str) -> dict[str, Any]:
    """Open without migrating, then migrate on the parent's signal."""
    async with await open_store(url, table_prefix=prefix, migrate=False) as store:
        _wait_for_go()
        started = time.monotonic()
        applied = await store.migrate()
        return {"applied": applied, "seconds": time.monotonic() - started}


COMMANDS = {"drain": drain, "hold-lock": hold_lock, "migrate": migrate}


def main() -> None:
    command, *args = sys.argv[1:]
    try:
        result = asyncio.run(COMMANDS[command](*args))
    except Exception as exc:
        _say({"error": type(exc).__name__, "message": str(exc)})
        raise SystemExit(1) from None
    _say(result)


if __name__ == "__main__":
    main()
