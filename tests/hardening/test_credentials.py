"""A database password, in every form PostgreSQL takes one, appears in no output, no log line,
no error and no stored field: userinfo in the URL, `?password=`, a libpq `key=value` string,
and `PGPASSWORD` in the environment. (The test server trusts its clients, so a connection
with any password works, and so do the commands.)"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from flowexec import App, ConfigError, FlowContext, StoreUnavailable, open_store
from flowexec.store.urls import redact
from tests.cli.conftest import Cli
from tests.conftest import drop_prefixed_tables
from tests.runtime.helpers import running_worker

from .snapshots import snapshot

SECRET = "Pw-7hunter2-xyzzy"
UNREACHABLE_PORT = "1"
APPLICATION_NAME = f"flowexec-hardening-{os.getpid()}"
"""Marks this test's own sessions, the only ones it ends (colleagues share the database)."""


@dataclass(frozen=True)
class CredentialForm:
    name: str
    url: str
    unreachable_url: str
    env: dict[str, str]
    accepted: bool = True
    """flowexec takes URLs only: a `key=value` string is refused, and the refusal must not
    show its password either."""


def _forms(base: str) -> list[CredentialForm]:
    params = {k: str(v) for k, v in conninfo_to_dict(base).items()}
    dbname = params.pop("dbname")
    user = params.pop("user", "root")
    params.pop("password", None)
    params["application_name"] = APPLICATION_NAME

    def variants(build: Any) -> tuple[str, str]:
        return build(params), build({**params, "port": UNREACHABLE_PORT})

    def userinfo(p: dict[str, str]) -> str:
        host = p.get("host", "")
        rest = {k: v for k, v in p.items() if k != "host"} if not host.startswith("/") else p
        netloc = host if not host.startswith("/") else ""
        port = f":{rest.pop('port')}" if netloc and "port" in rest else ""
        query = f"?{urlencode(rest)}" if rest else ""
        return f"postgresql://{quote(user)}:{SECRET}@{netloc}{port}/{dbname}{query}"

    def query(p: dict[str, str]) -> str:
        return f"postgresql:///{dbname}?{urlencode({**p, 'user': user, 'password': SECRET})}"

    def keyvalue(p: dict[str, str]) -> str:
        return make_conninfo("", **p, user=user, dbname=dbname, password=SECRET)

    def plain(p: dict[str, str]) -> str:
        return f"postgresql:///{dbname}?{urlencode({**p, 'user': user})}"

    return [
        CredentialForm("userinfo", *variants(userinfo), {}),
        CredentialForm("query", *variants(query), {}),
        CredentialForm("key=value", *variants(keyvalue), {}, accepted=False),
        CredentialForm("PGPASSWORD", *variants(plain), {"PGPASSWORD": SECRET}),
    ]


@pytest.fixture(params=["userinfo", "query", "key=value", "PGPASSWORD"])
def form(
    request: pytest.FixtureRequest, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> CredentialForm:
    chosen = next(f for f in _forms(postgres_url) if f.name == request.param)
    for name, value in chosen.env.items():
        monkeypatch.setenv(name, value)
    return chosen


def test_redact_hides_every_form(postgres_url: str) -> None:
    for form in _forms(postgres_url):
        for url in (form.url, form.unreachable_url):
            assert SECRET not in redact(url)
            assert SECRET not in redact(f"could not use {url!r}: failed")


async def test_no_password_in_cli_output_or_errors(
    form: CredentialForm, postgres_url: str, unique_prefix: str
) -> None:
    cli = Cli(form.url, unique_prefix)
    down = Cli(form.unreachable_url, unique_prefix)
    try:
        results = [
            await cli("migrate", env=form.env),
            await cli("--json", "migrate", env=form.env),
            await cli("submit", "flow", "--owner", "o", "--integration", "{}", env=form.env),
            await cli("ls", "flow", env=form.env),
            await cli("--json", "stats", env=form.env),
            await down("migrate", env=form.env),
            await down("--json", "migrate", env=form.env),
            await down("stats", env=form.env),
            await down("--debug", "stats", env=form.env),
        ]
        codes = [r.exit_code for r in results[:8]]
        if form.accepted:
            assert codes == [0] * 5 + [3] * 3, [r.output for r in results]
            assert isinstance(results[8].exception, StoreUnavailable)  # --debug: raised
        else:
            assert codes == [2] * 8, [r.output for r in results]
            assert isinstance(results[8].exception, ConfigError)
        for result in results:
            assert SECRET not in result.output
            assert SECRET not in result.stderr
            if result.exception is not None:
                assert SECRET not in repr(result.exception)
        assert "***" in results[0].output or form.name == "PGPASSWORD"
        stored = snapshot(postgres_url, unique_prefix)
        assert SECRET not in repr(stored)
        assert bool(stored) is form.accepted
    finally:
        drop_prefixed_tables(postgres_url, unique_prefix)


async def test_no_password_in_errors_or_logs_of_the_library(
    form: CredentialForm,
    postgres_url: str,
    unique_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(StoreUnavailable if form.accepted else ConfigError) as unreachable:
        await open_store(form.unreachable_url, table_prefix=unique_prefix, connect_timeout_s=2)
    assert SECRET not in str(unreachable.value)
    if not form.accepted:
        return
    app = App()

    @app.flow("echo")
    async def echo(ctx: FlowContext) -> Any:
        return ctx.integration

    try:
        async with await open_store(form.url, table_prefix=unique_prefix) as store:
            client = await app.client(store)
            async with running_worker(app, store):
                execution_id = await client.create("echo", owner_id="o", integration={"a": 1})
                await client.wait(execution_id, timeout=10)
                # Connections die under the worker: its warnings name the database.
                await asyncio.to_thread(_terminate_own_sessions, postgres_url)
                await asyncio.sleep(0.5)
                other = await client.create("echo", owner_id="o", integration={"a": 2})
                await client.wait(other, timeout=20)
        assert SECRET not in repr(snapshot(postgres_url, unique_prefix))
    finally:
        drop_prefixed_tables(postgres_url, unique_prefix)
    for record in caplog.records:
        assert SECRET not in record.getMessage(), record.getMessage()
        assert SECRET not in caplog.text


def _terminate_own_sessions(admin_url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as pg:
        pg.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (APPLICATION_NAME,),
        )
