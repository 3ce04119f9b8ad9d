"""`flowexec submit FLOW --from-file FILE`: root executions from JSON Lines, in batches.

Each non-blank line is one JSON object with the keys of a `Client.create_many` item
(`owner_id`, `options`, `integration`, `events`, `run_at` as ISO 8601 text, `delay` in
seconds, `priority`, `idempotency_key`); `--owner` gives the owner of lines without
one. Each batch is one `create_many`, so it is written whole or not at all, and its ids are
printed once it committed: when a later batch fails, the output holds every execution that
was created and the error names the line from which nothing was written.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Container, Iterable, Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

from flowexec.cli.session import UsageError, parse_json_object
from flowexec.cli.when import parse_at
from flowexec.errors import ValidationError
from flowexec.runtime.client import Client, InvalidItem
from flowexec.store.protocol import ExecutionStore

DEFAULT_BATCH_SIZE = 1000
STDIN = "-"

Line = tuple[int, dict[str, Any]]
"""An item with the number of the line it came from."""


@contextmanager
def opened_lines(source: str) -> Iterator[TextIO]:
    """The file's lines, or stdin's for `-`; a file that cannot be read is a usage error."""
    if source == STDIN:
        yield sys.stdin
        return
    try:
        file = Path(source).open(encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise UsageError(f"cannot read --from-file {source}: {exc.strerror}") from None
    with file:
        yield file


def read_items(lines: Iterable[str], source: str, owner: str | None) -> Iterator[Line]:
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        item = parse_json_object(text, f"--from-file {source} line {number}")
        if owner is not None:
            item.setdefault("owner_id", owner)
        if isinstance(item.get("run_at"), str):
            item["run_at"] = parse_at(item["run_at"], f"--from-file {source} line {number} run_at")
        yield number, item


def batched(items: Iterator[Line], size: int) -> Iterator[list[Line]]:
    while batch := list(islice(items, size)):
        yield batch


async def submit_lines(
    store: ExecutionStore,
    flow_id: str,
    source: str,
    *,
    owner: str | None,
    start: bool,
    batch_size: int,
    flows: Container[str] | None,
    on_batch: Callable[[list[tuple[int, str]]], None],
) -> None:
    """Create one execution per line, `batch_size` lines per `create_many`, and hand each
    batch's (line number, id) pairs to `on_batch` once it committed."""
    client = Client(store, flows=flows)
    with opened_lines(source) as lines:
        for batch in batched(read_items(lines, source, owner), batch_size):
            try:
                ids = await client.create_many(flow_id, [item for _, item in batch], start=start)
            except InvalidItem as exc:
                raise ValidationError(
                    f"--from-file {source} line {batch[exc.index][0]}: {exc.reason}; "
                    f"nothing from line {batch[0][0]} on was written"
                ) from None
            on_batch([(number, id) for (number, _), id in zip(batch, ids, strict=True)])
