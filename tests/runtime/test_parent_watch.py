"""`ParentWatch`: a supervised worker notices its supervisor is gone, by the kernel's
parent-death signal or by its parent pid, and leaves no signal armed behind it."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import sys

import pytest

from flowexec.runtime.parent_watch import PARENT_DEATH_SIGNAL, ParentWatch

_PR_GET_PDEATHSIG = 2


def armed_parent_death_signal() -> int:
    value = ctypes.c_int(-1)
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(_PR_GET_PDEATHSIG, ctypes.byref(value), 0, 0, 0) == 0
    return value.value


async def test_a_parent_pid_that_changed_means_orphaned(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []
    not_my_parent = os.getpid()  # never this process's own parent
    with caplog.at_level(logging.WARNING, "flowexec.supervisor"):
        await asyncio.wait_for(ParentWatch(not_my_parent, lambda: calls.append("x")).run(), 5)
    assert calls == ["x"]
    assert f"the supervisor (pid {not_my_parent}) is gone (parent pid changed)" in caplog.text


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
async def test_the_parent_death_signal_is_handled_then_disarmed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []
    watch = asyncio.create_task(ParentWatch(os.getppid(), lambda: calls.append("x")).run())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while armed_parent_death_signal() != PARENT_DEATH_SIGNAL:
        assert loop.time() < deadline, "the parent-death signal was never armed"
        await asyncio.sleep(0.01)
    with caplog.at_level(logging.WARNING, "flowexec.supervisor"):
        os.kill(os.getpid(), PARENT_DEATH_SIGNAL)  # what the kernel sends when the parent dies
        await asyncio.wait_for(watch, 5)
    assert calls == ["x"] and "(parent-death signal)" in caplog.text
    assert armed_parent_death_signal() == 0
