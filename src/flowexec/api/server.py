"""`flowexec serve`: checks before binding, then uvicorn with one or several processes.

The server refuses to start without any API token, unless `--insecure-no-auth` is given and it
binds a loopback address only; then every request acts as an anonymous admin, and a warning is
logged. With `--workers N` uvicorn forks N processes, each building its app from the
environment (`app_from_environment`), so no setting travels as a command-line argument.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from flowexec.api.app import create_app
from flowexec.api.settings import SHUTDOWN_GRACE_S, ApiSettings
from flowexec.errors import ConfigError
from flowexec.model import DEFAULT_TABLE_PREFIX
from flowexec.store import open_store
from flowexec.store.urls import resolve

log = logging.getLogger("flowexec.api")

INSECURE_ENV = "FLOWEXEC_API_INSECURE_NO_AUTH"
URL_ENV = "FLOWEXEC_DATABASE_URL"
PREFIX_ENV = "FLOWEXEC_TABLE_PREFIX"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class ServeOptions:
    url: str
    table_prefix: str = DEFAULT_TABLE_PREFIX
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    insecure_no_auth: bool = False
    shutdown_grace_s: int = SHUTDOWN_GRACE_S


async def check_can_serve(options: ServeOptions) -> None:
    """Refuse to serve an API nobody could safely call: no tokens and no explicit insecure
    mode, or insecure mode on an address other machines reach."""
    if options.insecure_no_auth:
        if not is_loopback(options.host):
            raise ConfigError(
                f"--insecure-no-auth serves anyone who connects, so it binds loopback addresses "
                f"only (127.0.0.1, ::1, localhost), not {options.host!r}"
            )
        log.warning(
            "serving WITHOUT authentication on %s: every request acts as an admin",
            options.host,
        )
        return
    store = await open_store(options.url, table_prefix=options.table_prefix, migrate=False)
    try:
        tokens = await store.list_tokens()
    finally:
        await store.close()
    if not tokens:
        raise ConfigError(
            "no API tokens exist: create one with `flowexec tokens create --owner NAME`, or "
            "pass --insecure-no-auth to serve without authentication on a loopback address"
        )


def app_from_environment() -> FastAPI:
    """The app of one `--workers` process, from the settings its parent put in the
    environment."""
    settings = ApiSettings(auth=os.environ.get(INSECURE_ENV) != "1")
    return create_app(
        resolve(os.environ.get(URL_ENV)),
        settings=settings,
        table_prefix=os.environ.get(PREFIX_ENV, DEFAULT_TABLE_PREFIX),
        migrate=False,
    )


def serve(options: ServeOptions) -> None:
    """Serve until SIGINT or SIGTERM: in-flight requests get `shutdown_grace_s` to finish."""
    if options.workers == 1:
        app = create_app(
            options.url,
            settings=ApiSettings(auth=not options.insecure_no_auth),
            table_prefix=options.table_prefix,
            migrate=False,
        )
        uvicorn.run(
            app,
            host=options.host,
            port=options.port,
            log_config=None,
            timeout_graceful_shutdown=options.shutdown_grace_s,
        )
        return
    os.environ[URL_ENV] = options.url
    os.environ[PREFIX_ENV] = options.table_prefix
    os.environ[INSECURE_ENV] = "1" if options.insecure_no_auth else "0"
    uvicorn.run(
        "flowexec.api.server:app_from_environment",
        factory=True,
        host=options.host,
        port=options.port,
        workers=options.workers,
        log_config=None,
        timeout_graceful_shutdown=options.shutdown_grace_s,
    )
