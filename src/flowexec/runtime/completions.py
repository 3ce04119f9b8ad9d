"""Returned runs waiting to be completed together with the worker's next claim.

A run that returned hands its `Completion` to the queue and waits; the worker's claim loop
takes every waiting completion into its next `claim_and_start`, so completing a batch and
claiming the next one cost one round trip and one commit between them. A completion the
store did not write (lease lost, paused, stopped), or that could not be sent at all, comes
back as False: the run then writes its outcome on its own, which also says why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from flowexec.model import Completion


class CompletionQueue:
    def __init__(self, on_submit: asyncio.Event) -> None:
        self._on_submit = on_submit
        self._waiting: list[tuple[Completion, asyncio.Future[bool]]] = []
        self._open = True

    def __len__(self) -> int:
        return len(self._waiting)

    def submit(self, completion: Completion) -> asyncio.Future[bool] | None:
        """A future: True once the completion is written, False if the run must write it
        itself. None when the queue is closed."""
        if not self._open:
            return None
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((completion, future))
        self._on_submit.set()
        return future

    def take(self) -> list[tuple[Completion, asyncio.Future[bool]]]:
        taken, self._waiting = self._waiting, []
        return taken

    @staticmethod
    def settle(
        taken: list[tuple[Completion, asyncio.Future[bool]]], written: Collection[str]
    ) -> None:
        for completion, future in taken:
            if not future.done():
                future.set_result(completion.execution_id in written)

    def close(self) -> None:
        """From now on every run writes its own outcome (the claim loop has ended)."""
        self._open = False
        self.settle(self.take(), ())
