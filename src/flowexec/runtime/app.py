"""`App`: the flows of an application, and the client that may create executions of them.

`App` is the façade users hold: the registry of `flowexec.runtime.flows` plus `client()`.
Nothing in the runtime imports it: the worker and its runs need only the registry, so the
dependencies run one way (flows ← client ← app, flows ← run ← worker).
"""

from __future__ import annotations

from typing import Any

from flowexec.model import DEFAULT_TABLE_PREFIX
from flowexec.runtime.client import Client
from flowexec.runtime.flows import FlowRegistry
from flowexec.store.protocol import ExecutionStore


class App(FlowRegistry):
    async def client(
        self,
        store_or_url: ExecutionStore | str | None = None,
        *,
        table_prefix: str = DEFAULT_TABLE_PREFIX,
        **store_options: Any,
    ) -> Client:
        """A client that refuses flow ids this app does not register."""
        return await Client.connect(
            store_or_url, table_prefix=table_prefix, flows=self, **store_options
        )
