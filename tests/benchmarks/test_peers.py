"""The peers harness: job starts reach it, missing peers are skipped, and flowexec goes
through every phase end to end (real database, real worker subprocess, tiny sizes)."""

from __future__ import annotations

import asyncio
import os

import pytest
from benchmarks._peers.harness import PERCENTILES, Sizes, open_harness, start_listener
from benchmarks._peers.jobs import REPORT_ENV, job_started, now
from benchmarks._peers.library import FLOWEXEC, Candidate
from benchmarks._postgres import PostgresBench


async def test_a_job_start_reaches_the_listener(monkeypatch: pytest.MonkeyPatch) -> None:
    async with start_listener() as (listener, report_to):
        monkeypatch.setenv(REPORT_ENV, report_to)
        listener.expect(2)
        before = now()
        job_started(7)
        job_started(8)
        assert await listener.reached(5.0)
        assert set(listener.starts) == {7, 8}
        assert before <= listener.starts[7] <= now()


def test_a_peer_that_cannot_run_here_is_skipped_with_the_reason() -> None:
    too_new = Candidate("future", "benchmarks._peers.nothing", ("flowexec",), min_python=(99, 0))
    missing = Candidate("absent", "benchmarks._peers.nothing", ("no-such-distribution-x",))
    assert "needs Python >= 99.0" in (too_new.skip_reason() or "")
    assert "not installed" in (missing.skip_reason() or "")
    assert FLOWEXEC.skip_reason() is None


async def test_flowexec_goes_through_every_phase(postgres_url: str) -> None:
    pg = PostgresBench(url=postgres_url, origin="test", server_version="", settings={})
    sizes = Sizes(jobs=30, single=5, rate=100, seconds=0.2, drain_timeout_s=60.0)
    async with open_harness(pg, sizes, lambda _message: None) as harness:
        figures = await asyncio.wait_for(harness.measure(FLOWEXEC.load(), os.getpid()), 120)
    assert figures.bulk_per_s > 0 and figures.drain_per_s > 0 and figures.single_per_s > 0
    assert figures.startup_s > 0
    assert set(figures.latency_ms) == set(PERCENTILES)
    assert all(ms > 0 for ms in figures.latency_ms.values())
