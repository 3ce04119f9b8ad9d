"""Task lifetimes: whatever a component starts has ended by the time the component returns."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from flowexec.errors import StoreUnavailable
from flowexec.runtime.logs import BoundLogger

CANCEL_RETRY_S = 1.0
"""How long a cancelled task gets to end before it is cancelled again (its cleanup may hang)."""


async def wait_first(
    *awaitables: Awaitable[Any], timeout: float | None = None  # noqa: ASYNC109 - asyncio.wait's
) -> set[asyncio.Future[Any]]:
    """Wait until one of `awaitables` is done (or `timeout` passed); returns those done.

    Coroutines are wrapped in tasks that are cancelled, and awaited, before this returns;
    futures and tasks passed in belong to the caller and are left as they are.
    """
    started: list[asyncio.Future[Any]] = []
    futures: list[asyncio.Future[Any]] = []
    for awaitable in awaitables:
        future = asyncio.ensure_future(awaitable)
        if future is not awaitable:
            started.append(future)
        futures.append(future)
    try:
        done, _ = await asyncio.wait(
            futures, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        await end_tasks(started, grace_s=0)
    return done


async def end_tasks(tasks: Collection[asyncio.Future[Any]], *, grace_s: float) -> None:
    """Give `tasks` `grace_s` to end on their own, then cancel them until they have ended."""
    pending = {task for task in tasks if not task.done()}
    try:
        if pending and grace_s > 0:
            _, pending = await asyncio.wait(pending, timeout=grace_s)
        while pending:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=CANCEL_RETRY_S)
    except asyncio.CancelledError:
        for task in pending:
            task.cancel()
        raise


async def every(
    interval_s: float, step: Callable[[], Awaitable[None]], *, name: str, log: BoundLogger
) -> None:
    """Run `step` every `interval_s` until cancelled; one failed step never ends the loop."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await step()
        except (StoreUnavailable, TimeoutError) as exc:
            log.warning("%s failed: %s", name, str(exc) or type(exc).__name__)
        except Exception:
            log.exception("%s failed", name)
