"""The runtime's small parts on their own: backoff, child ids, the control state, log formats."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import sys

from flowexec.model import ExecutionStatus
from flowexec.policy import Backoff
from flowexec.runtime.child_ids import child_execution_id, emit_identity, keyed_identity
from flowexec.runtime.control import AbortReason, RunControl
from flowexec.runtime.logs import BoundLogger, JsonFormatter, KeyValueFormatter


def test_retry_delays_grow_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(7)
    backoff = Backoff(base_ms=100, max_ms=5000)
    for failures, ceiling in [(0, 100), (1, 200), (2, 400), (5, 3200), (20, 5000), (99, 5000)]:
        delays = {backoff.jittered_ms(failures, rng) for _ in range(50)}
        assert all(ceiling // 2 <= d <= ceiling for d in delays), (failures, delays)
        assert len(delays) > 1, "jittered"
    assert Backoff(base_ms=0, max_ms=0).jittered_ms(3) == 0


def test_child_ids_are_deterministic_valid_and_distinct() -> None:
    first = child_execution_id("EXPARENT", *emit_identity("flow", "evt", '{"a":1}', 1))
    again = child_execution_id("EXPARENT", *emit_identity("flow", "evt", '{"a":1}', 1))
    assert first == again
    assert re.fullmatch(r"EX[0-9A-HJKMNP-TV-Z]{24}", first)
    others = {
        child_execution_id("EXPARENT", *emit_identity("flow", "evt", '{"a":1}', 2)),
        child_execution_id("EXPARENT", *emit_identity("flow", "evt", '{"a":2}', 1)),
        child_execution_id("EXPARENT", *emit_identity("other", "evt", '{"a":1}', 1)),
        child_execution_id("EXOTHER", *emit_identity("flow", "evt", '{"a":1}', 1)),
        child_execution_id("EXPARENT", *keyed_identity("k")),
    }
    assert first not in others and len(others) == 5


async def test_a_poll_answer_older_than_a_local_change_is_ignored() -> None:
    control = RunControl()
    polled_at = control.version
    control.pause()  # e.g. a breakpoint, written while the poll was in flight
    assert control.observe(ExecutionStatus.RUNNING, polled_at) is None
    assert control.paused
    assert control.observe(ExecutionStatus.RUNNING, control.version) == "resumed"
    assert not control.paused
    assert control.observe(ExecutionStatus.PAUSED, control.version) == "paused"


async def test_stop_and_loss_abort_once_with_the_first_reason() -> None:
    aborted: list[str] = []
    control = RunControl(on_abort=lambda: aborted.append("cancel"))
    control.observe(ExecutionStatus.STOPPED, control.version)
    control.observe(None, control.version)
    assert control.abort(AbortReason.SHUTDOWN) is False
    assert (control.abort_reason, aborted) == (AbortReason.STOPPED, ["cancel"])
    assert await control.wait_running() is False

    moved = RunControl()
    moved.observe(ExecutionStatus.CREATED, moved.version)
    assert moved.abort_reason is AbortReason.LOST
    assert "'created'" in moved.abort_detail


async def test_the_flow_timeout_stands_still_while_paused() -> None:
    control = RunControl()
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(0.2) as deadline:
        control.attach_deadline(deadline)
        control.pause()
        assert deadline.when() is None
        await asyncio.sleep(0.3)  # longer than the budget, but paused
        control.resume()
        when = deadline.when()
        assert when is not None and 0.1 < when - loop.time() <= 0.2
    assert not deadline.expired()


def test_log_formats_carry_the_bound_ids() -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("flowexec.test-parts")
    logger.addHandler(Keep())
    logger.setLevel(logging.INFO)
    log = BoundLogger(logger, {"worker_id": "w1"}).bind(execution_id="EX1", flow_id="f")
    log.info("hello %s", "there", extra={"node_id": "n1"})

    line = KeyValueFormatter().format(records[0])
    assert line.endswith(
        "INFO flowexec.test-parts hello there worker_id=w1 execution_id=EX1 flow_id=f node_id=n1"
    )
    entry = json.loads(JsonFormatter().format(records[0]))
    assert {k: entry[k] for k in ("message", "worker_id", "execution_id", "flow_id")} == {
        "message": "hello there", "worker_id": "w1", "execution_id": "EX1", "flow_id": "f"
    }


def test_a_record_is_one_line_whatever_its_message_and_traceback() -> None:
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        record = logging.LogRecord(
            "flowexec.test-parts", logging.ERROR, __file__, 1, "two\nlines", None,
            sys.exc_info(),
        )
    line = KeyValueFormatter().format(record)
    assert "\n" not in line and "two\\nlines" in line
    assert 'exception="Traceback' in line and "ValueError: bad" in line
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "two\nlines" and "ValueError" in entry["exception"]
