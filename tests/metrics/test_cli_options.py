"""`flowexec worker --metrics-port/--metrics-host` refuse values that cannot work, as usage
errors (exit 2, no traceback) before any worker starts."""

from __future__ import annotations

import pytest

from tests.cli.conftest import Cli, assert_one_line_error

WORKER = ("worker", "--app", "tests.metrics.metrics_app:app")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--metrics-port", "0"], "--metrics-port"),
        (["--metrics-port", "65536"], "--metrics-port"),
        (["--metrics-port", "http"], "--metrics-port"),
        (["--metrics-port", "9100", "--metrics-host", ""], "--metrics-host"),
        (["--metrics-port", "9100", "--metrics-host", " 127.0.0.1"], "--metrics-host"),
        (["--metrics-port", "65535", "--processes", "2"], "ports 65535 to 65536"),
    ],
)
async def test_bad_metrics_options_are_usage_errors(cli: Cli, args: list[str], says: str) -> None:
    result = await cli(*WORKER, *args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert says in result.stderr and "Traceback" not in result.stderr


async def test_an_address_that_cannot_be_bound_is_one_line(cli: Cli, unused_tcp_port: int) -> None:
    result = await cli(
        *WORKER, "--metrics-port", str(unused_tcp_port), "--metrics-host", "256.0.0.1"
    )
    assert_one_line_error(result, 2, f"cannot serve metrics on 256.0.0.1:{unused_tcp_port}")
