"""`flowexec submit FLOW --from-file FILE`: one execution per JSON line, in batches."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.cli import cli_app
from tests.cli.conftest import WIDE, Cli, assert_one_line_error
from typer.testing import CliRunner

from flowexec.cli import app
from flowexec.store.protocol import ExecutionStore


def write_lines(path: Path, *items: object) -> str:
    path.write_text("".join(f"{json.dumps(i)}\n" if i != "" else "\n" for i in items))
    return str(path)


async def count(store: ExecutionStore) -> int:
    return sum((await store.get_stats()).counts_by_status.values())


async def test_each_line_becomes_an_execution_in_batches(
    cli: Cli, store: ExecutionStore, tmp_path: Path
) -> None:
    items = [{"owner_id": f"o{n}", "integration": {"n": n}} for n in range(7)]
    source = write_lines(tmp_path / "items.jsonl", *items[:3], "", *items[3:])
    result = await cli.ok("submit", cli_app.ECHO, "--from-file", source, "--batch-size", "3")
    ids = result.stdout.split()
    assert len(ids) == len(set(ids)) == 7
    created = [await store.get(i) for i in ids]
    assert [(e.owner_id, e.integration) for e in created if e is not None] == [
        (i["owner_id"], i["integration"]) for i in items
    ]
    assert all(e is not None and e.available_at is not None for e in created)


async def test_json_output_maps_lines_to_ids_and_owner_fills_in(
    cli: Cli, store: ExecutionStore, tmp_path: Path
) -> None:
    source = write_lines(
        tmp_path / "items.jsonl",
        {"options": {"debug": True}, "events": [{"event_name": "paid", "payload": 1}]},
        "",
        {"owner_id": "bob"},
    )
    result = await cli.ok(
        "submit", cli_app.ECHO, "--from-file", source, "--owner", "alice", "--no-start", "--json"
    )
    shown = [json.loads(line) for line in result.stdout.splitlines()]
    assert [s["line"] for s in shown] == [1, 3]
    first, second = [await store.get(s["id"]) for s in shown]
    assert first is not None and second is not None
    assert (first.owner_id, second.owner_id) == ("alice", "bob")
    assert first.options is not None and first.options.debug
    assert first.external_events == [{"event_name": "paid", "payload": 1}]
    assert first.available_at is None and second.available_at is None


async def test_stdin(cli: Cli, store: ExecutionStore) -> None:
    args = [*cli.global_args(), "submit", cli_app.ECHO, "--from-file", "-"]
    lines = '{"owner_id": "a"}\n{"owner_id": "b"}\n'
    result = await asyncio.to_thread(CliRunner().invoke, app, args, input=lines, env=WIDE)
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.split()) == 2
    assert await count(store) == 2


async def test_a_bad_line_rejects_its_batch_and_names_the_line(
    cli: Cli, store: ExecutionStore, tmp_path: Path
) -> None:
    source = write_lines(
        tmp_path / "items.jsonl", {"owner_id": "a"}, {"owner_id": "b"}, {"owner_id": ""}
    )
    result = await cli("submit", cli_app.ECHO, "--from-file", source, "--batch-size", "2")
    assert result.exit_code == 2
    assert len(result.stdout.split()) == 2  # the first batch committed and was printed
    assert "line 3: owner_id must not be empty; nothing from line 3 on was written" in (
        result.stderr
    )
    assert await count(store) == 2


async def test_bad_files_and_options(cli: Cli, store: ExecutionStore, tmp_path: Path) -> None:
    not_json = tmp_path / "bad.jsonl"
    not_json.write_text('{"owner_id": "a"}\n{"owner_id": \n')
    cases = [
        (["--from-file", str(not_json)], "line 2 is not valid JSON"),
        (["--from-file", str(tmp_path / "absent.jsonl")], "cannot read --from-file"),
        (["--from-file", write_lines(tmp_path / "list.jsonl", [1])], "must be a JSON object"),
        (["--from-file", write_lines(tmp_path / "key.jsonl", {"owner": "a"})],
         "line 1: unknown keys ['owner']"),
        (["--from-file", str(not_json), "--integration", "{}"],
         "--integration cannot be used with --from-file"),
        (["--from-file", str(not_json), "--wait"], "--wait cannot be used with --from-file"),
        ([], "submit needs --owner (or --from-file)"),
    ]
    for args, fragment in cases:
        assert_one_line_error(await cli("submit", cli_app.ECHO, *args), 2, fragment)
    assert await count(store) == 0


async def test_an_unknown_flow_with_app(cli: Cli, store: ExecutionStore, tmp_path: Path) -> None:
    source = write_lines(tmp_path / "items.jsonl", {"owner_id": "a"})
    result = await cli(
        "submit", "no.such.flow", "--from-file", source, "--app", "tests.cli.cli_app:app"
    )
    assert_one_line_error(result, 1, "no.such.flow")
    assert await count(store) == 0
