"""Whole-store views and probes: `/stats`, `/flows`, `/healthz`, `/readyz`."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse

from flowexec.api.auth import Caller, Store
from flowexec.api.problems import ApiProblem, problem
from flowexec.api.schemas import FlowOut, Flows, Health, StatsOut
from flowexec.errors import StoreUnavailable

router = APIRouter(tags=["system"])


@router.get("/stats", response_model=StatsOut)
async def get_stats(caller: Caller, store: Store) -> StatsOut:
    """The whole store's figures, so only for an admin token."""
    if not caller.admin:
        raise ApiProblem(403, "admin-only", "the store's statistics need an admin token")
    return StatsOut.of(await store.get_stats())


@router.get("/flows", response_model=Flows)
async def get_flows(caller: Caller, store: Store) -> Flows:
    """Flows with executions, and their counts by status: the caller's own, or all for an
    admin."""
    counts = await store.get_flow_counts(owner_id=caller.owner_filter)
    return Flows(items=[FlowOut(flow_id=f, counts_by_status=c) for f, c in counts.items()])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up; no database call."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"description": "The store does not answer."}},
)
async def readyz(store: Store) -> Health | JSONResponse:
    """The store answers (one clock read)."""
    try:
        await store.now()
    except StoreUnavailable as exc:
        return problem(503, "store-unavailable", str(exc))
    return Health(status="ok")
