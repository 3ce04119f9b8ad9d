"""At 80 columns (a small terminal, or piped), `ls`, `claims`, `show` and `tree` choose
columns and wrap free text, but never cut an id or a header; `--wide` shows every column."""

from __future__ import annotations

import re

import pytest
import typer
from tests.cli.conftest import NARROW, Cli, assert_fits_whole
from tests.conformance.helpers import claim, create_child, set_status, start_running
from typer.testing import CliRunner

from flowexec.cli import app
from flowexec.cli.app import COMMANDS
from flowexec.cli.inspect_commands import CLAIM_COLUMNS
from flowexec.cli.list_command import ROOT_COLUMNS
from flowexec.cli.render import RECOVERY_COLUMNS
from flowexec.model import ExecutionStatus
from flowexec.store.protocol import ExecutionStore

WORKER = "vm-1136.eu-west.internal-48213-9f3a"
"""As long as a default worker id on a cloud host (host-pid-random)."""
RESCUER = "vm-1137.eu-west.internal-51277-0c1d"
FLOW = "checkout-with-a-rather-long-flow-name"
OWNER = "customer-0000012345-with-a-long-owner-id"


async def narrow(cli: Cli, *args: str) -> str:
    result = await cli(*args, env=NARROW)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout


async def test_ls_claims_show_and_tree_keep_ids_and_headers_whole(
    cli: Cli, store: ExecutionStore
) -> None:
    root, lease = await start_running(store, worker_id=WORKER, flow_id=FLOW, owner_id=OWNER)
    children = [
        await create_child(store, root, external_events=[
            {"event_name": "payment-authorised-by-the-bank", "payload": None}
        ])
        for _ in range(2)
    ]
    grandchild = await create_child(store, children[0])
    await set_status(store, grandchild.id, ExecutionStatus.RUNNING)
    await set_status(store, grandchild.id, ExecutionStatus.FAILED,
                     error_message="the card issuer declined the payment " * 3,
                     error_node_id="charge-card")
    other = await create_child(store, children[1])
    await claim(store, other.id, RESCUER)
    await store.record_recovery(root.id, RESCUER, "released_while_running", "running", WORKER)

    listed = await narrow(cli, "ls", FLOW)
    assert_fits_whole(listed, root.id, "status", "created", "running")

    claims = await narrow(cli, "claims")
    assert_fits_whole(claims, root.id, other.id, WORKER, RESCUER, "execution", "worker")

    shown = await narrow(cli, "show", root.id)
    assert_fits_whole(shown, root.id, WORKER, FLOW, OWNER, "released_while_running",
                      "recovery history")
    assert f"by {lease.worker_id}" in shown

    tree = await narrow(cli, "tree", root.id)
    assert_fits_whole(tree, root.id, grandchild.id, other.id, *(c.id for c in children))


async def test_wide_shows_every_column(cli: Cli, store: ExecutionStore) -> None:
    root, _ = await start_running(store, worker_id=WORKER, flow_id=FLOW, owner_id=OWNER)
    await store.record_recovery(root.id, RESCUER, "released_while_running", "running", WORKER)
    for args, columns in ((["ls", FLOW], ROOT_COLUMNS), (["claims"], CLAIM_COLUMNS),
                          (["show", root.id], RECOVERY_COLUMNS)):
        narrow_out = await narrow(cli, *args)
        wide_out = await narrow(cli, *args, "--wide")
        for column in columns:
            assert column.header in wide_out, (args, column.header, wide_out)
        assert "…" not in wide_out
        dropped = [c.header for c in columns if c.header not in narrow_out]
        if args[0] != "claims":  # these two leave some columns out at 80
            assert dropped, (args, narrow_out)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_at_80_columns_keeps_every_option_name_whole(name: str) -> None:
    group = typer.main.get_command(app)
    command = group.get_command(typer.Context(group), name)  # type: ignore[attr-defined]
    result = CliRunner().invoke(app, [name, "--help"], env={**NARROW, "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output, result.output
    for param in command.params:
        for option in [*param.opts, *param.secondary_opts]:
            if option.startswith("-"):
                assert option in result.output, (name, option, result.output)
    flags = [p for p in command.params if getattr(p, "is_flag", False)]
    assert flags and all(
        re.search(rf"{re.escape(p.opts[-1])}(\s|,|$| /)", result.output) for p in flags
    )
