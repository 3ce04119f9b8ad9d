"""One contender for a leader lease, as its own process: `python -m tests.leader_contender
URL PREFIX LOCK_ID LEASE_S TICK_S STATE_FILE`.

Every tick it tries to take (or renew) the lease. While it believes it leads, the state file
holds the monotonic time (comparable across processes on Linux) its belief ends: the moment
before its call plus the lease, which is never after the lease's end on the database clock.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from flowexec import open_store


def _write(path: Path, text: str) -> None:
    scratch = path.with_suffix(".tmp")
    scratch.write_text(text)
    os.replace(scratch, path)


async def main(url: str, prefix: str, lock_id: int, lease_s: float, tick_s: float,
               state: Path) -> None:
    store = await open_store(url, table_prefix=prefix, migrate=False)
    _write(state, "0")
    while True:
        before = time.monotonic()
        leads = await store.try_acquire_recovery_lock(lock_id, lease_s=lease_s)
        _write(state, repr(before + lease_s if leads else 0.0))
        await asyncio.sleep(tick_s)


if __name__ == "__main__":
    url, prefix, lock_id, lease_s, tick_s, state = sys.argv[1:]
    asyncio.run(main(url, prefix, int(lock_id), float(lease_s), float(tick_s), Path(state)))
