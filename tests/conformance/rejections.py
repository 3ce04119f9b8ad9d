"""Tables of bad calls, and the check that each is refused with a message and writes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from flowexec.errors import ValidationError
from flowexec.model import (
    MAX_ID_LENGTH,
    MAX_LIMIT,
    MAX_TIMEOUT_MS,
)
from flowexec.store.protocol import ExecutionStore

from .helpers import (
    World,
    snapshot,
)

Call = Callable[[ExecutionStore, World], Awaitable[object]]

LONG_ID = "x" * (MAX_ID_LENGTH + 1)
BAD_IDS: list[object] = ["", LONG_ID, " padded ", "line\nbreak", "nul\x00", 123, None, b"bytes"]
BAD_LIMITS: list[object] = [0, -1, MAX_LIMIT + 1, 2.5, "10", True, None]
BAD_TIMEOUTS: list[object] = [0, -1, -60_000, MAX_TIMEOUT_MS + 1, 10**12, 1.5, "100", True, None]
NAIVE = datetime(2024, 1, 1, 12, 0)


async def check_rejected(
    store: ExecutionStore, world: World, cases: list[tuple[str, Call]]
) -> None:
    """Every call raises ValidationError with a message, and nothing in the store changes."""
    before = await snapshot(store, world.ids)
    problems = []
    for label, call in cases:
        try:
            await call(store, world)
        except ValidationError as exc:
            if not str(exc):
                problems.append(f"{label}: ValidationError without a message")
        except Exception as exc:
            problems.append(f"{label}: raised {type(exc).__name__}: {exc}")
        else:
            problems.append(f"{label}: accepted")
    after = await snapshot(store, world.ids)
    assert not problems, "\n".join(problems)
    assert after == before


def each(
    label: str, values: list[object], make: Callable[[object], Call]
) -> list[tuple[str, Call]]:
    return [(f"{label}={value!r:.40}", make(value)) for value in values]
