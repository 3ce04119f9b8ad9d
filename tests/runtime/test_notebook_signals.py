"""A Worker started from a notebook (a loop outside the main thread, or an IPython kernel)
leaves SIGINT and SIGTERM alone and says so; in a plain program it takes them. Each case
runs in a real process of its own, so that its signal handlers are its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = '''
import asyncio, json, logging, signal, sys, threading
from flowexec import App, Worker

mode, url = sys.argv[1], sys.argv[2]
if mode == "kernel":  # what `IPython.get_ipython()` gives inside a Jupyter kernel
    import types
    class KernelShell:
        kernel = object()
    sys.modules["IPython"] = types.SimpleNamespace(get_ipython=lambda: KernelShell())

app = App()

@app.flow("noop")
async def noop(ctx):
    return None

lines = []

class Keep(logging.Handler):
    def emit(self, record):
        lines.append(record.getMessage())

logging.getLogger("flowexec").addHandler(Keep())
logging.getLogger("flowexec").setLevel(logging.INFO)

async def main():
    before = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]
    worker = Worker(app, url, recovery=False, poll_interval_s=0.05)
    running = asyncio.create_task(worker.run())
    for _ in range(400):  # until the worker has opened its store and started its loops
        if any("started" in line or "installing no" in line for line in lines):
            break
        await asyncio.sleep(0.05)
    during = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]
    worker.stop()
    await running
    return {"signals_untouched": during == before, "logs": lines}

if mode == "thread":
    result = {}
    thread = threading.Thread(target=lambda: result.update(asyncio.run(main())))
    thread.start()
    thread.join(60)
else:
    result = asyncio.run(main())
print(json.dumps(result))
'''


def probe(mode: str, tmp_path: Path) -> dict[str, object]:
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    url = f"sqlite:///{tmp_path / 'flowexec.db'}"
    done = subprocess.run([sys.executable, str(script), mode, url], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize(
    ("mode", "reason"),
    [("thread", "the event loop is not in the main thread"),
     ("kernel", "an IPython kernel (a notebook) is running")],
)
def test_a_notebook_worker_installs_no_signal_handlers_and_says_so(
    tmp_path: Path, mode: str, reason: str
) -> None:
    result = probe(mode, tmp_path)
    assert result["signals_untouched"] is True
    logs = result["logs"]
    assert isinstance(logs, list)
    assert any(f"installing no SIGINT/SIGTERM handlers: {reason}" in line for line in logs), logs


def test_a_worker_in_a_plain_program_takes_the_stop_signals(tmp_path: Path) -> None:
    result = probe("main", tmp_path)
    assert result["signals_untouched"] is False
