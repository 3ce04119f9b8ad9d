"""The runtime: flows and nodes, workers that run them, clients that drive them.

See docs/architecture.md §7.
"""

from __future__ import annotations

from flowexec.runtime.app import App
from flowexec.runtime.client import Client
from flowexec.runtime.context import FlowContext
from flowexec.runtime.events import FlowEvent
from flowexec.runtime.flows import FlowSpec
from flowexec.runtime.worker import Worker

__all__ = ["App", "Client", "FlowContext", "FlowEvent", "FlowSpec", "Worker"]
