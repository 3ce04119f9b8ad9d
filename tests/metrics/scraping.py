"""Scraping `/metrics` over real HTTP and reading samples the way Prometheus parses them."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample by name and labels, through prometheus_client's text parser."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def _get(url: str) -> tuple[str, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.headers["Content-Type"], response.read().decode()


async def scrape(port: int, path: str = "/metrics") -> tuple[str, Samples]:
    content_type, text = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}{path}")
    return content_type, parse(text)


async def scrape_until(
    port: int,
    ready: Callable[[Samples], bool],
    *,
    limit_s: float = 30,
    alive: Callable[[], Awaitable[str | None]] | None = None,
) -> Samples:
    """Scrape until `ready` holds (the server may not listen yet at first)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    last: Samples = {}
    while True:
        with contextlib.suppress(urllib.error.URLError, ConnectionError):
            _, last = await scrape(port)
        if last and ready(last):
            return last
        if alive is not None and (why := await alive()) is not None:
            raise AssertionError(why)
        assert loop.time() < deadline, f"metrics never got there: {sorted(last.items())}"
        await asyncio.sleep(0.1)
