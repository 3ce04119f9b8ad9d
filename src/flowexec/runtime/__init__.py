"""The runtime: flows and nodes, workers that run them, clients that drive them.

See docs/architecture.md §7.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowexec.lazy import lazy_exports

if TYPE_CHECKING:
    from flowexec.runtime.app import App
    from flowexec.runtime.client import Client
    from flowexec.runtime.context import FlowContext
    from flowexec.runtime.events import FlowEvent
    from flowexec.runtime.flows import FlowSpec
    from flowexec.runtime.worker import Worker

__getattr__ = lazy_exports(
    globals(),
    {
        "App": "flowexec.runtime.app",
        "Client": "flowexec.runtime.client",
        "FlowContext": "flowexec.runtime.context",
        "FlowEvent": "flowexec.runtime.events",
        "FlowSpec": "flowexec.runtime.flows",
        "Worker": "flowexec.runtime.worker",
    },
)

__all__ = ["App", "Client", "FlowContext", "FlowEvent", "FlowSpec", "Worker"]
