"""Executions over HTTP: create, read, act on, and list them, within the caller's owner.

Every call that names an execution reads it first and goes on only if the caller may see it
(`Principal.visible`), so another owner's execution answers 404 like a missing one.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request

from flowexec.api.auth import Caller, Store
from flowexec.api.cursors import decode_cursor, encode_cursor
from flowexec.api.schemas import (
    ClaimHolder,
    ClaimOut,
    CreateBatch,
    Created,
    CreatedBatch,
    CreateExecution,
    ExecutionOut,
    Reason,
    Recoveries,
    RecoveryOut,
    RootOut,
    RootPage,
    Started,
    Tree,
    TreeNodeOut,
)
from flowexec.api.settings import DEFAULT_PAGE, MAX_PAGE, MAX_TREE_NODES
from flowexec.model import DEFAULT_TREE_NODES, Execution, ExecutionStatus
from flowexec.runtime.client import Client

router = APIRouter(tags=["executions"])


def api_client(request: Request) -> Client:
    client: Client = request.app.state.client
    return client


Commands = Annotated[Client, Depends(api_client)]
OptionalReason = Annotated[Reason | None, Body()]


async def _visible(store: Store, caller: Caller, execution_id: str) -> Execution:
    return caller.visible(await store.get(execution_id), execution_id)


@router.post("/executions", status_code=201, response_model=Created)
async def create_execution(body: CreateExecution, caller: Caller, client: Commands) -> Created:
    execution_id = await client.create(
        body.flow_id,
        owner_id=caller.owner_for(body.owner_id),
        options=body.options,
        integration=body.integration,
        events=body.events,
        start=body.start,
    )
    return Created(id=execution_id)


@router.post("/executions/batch", status_code=201, response_model=CreatedBatch)
async def create_executions(body: CreateBatch, caller: Caller, client: Commands) -> CreatedBatch:
    items = [
        {**item.model_dump(exclude_none=True), "owner_id": caller.owner_for(item.owner_id)}
        for item in body.items
    ]
    return CreatedBatch(ids=await client.create_many(body.flow_id, items, start=body.start))


@router.get("/executions/{execution_id}", response_model=ExecutionOut)
async def get_execution(execution_id: str, caller: Caller, store: Store) -> ExecutionOut:
    return ExecutionOut.of(await _visible(store, caller, execution_id))


@router.get("/executions/{execution_id}/tree", response_model=Tree)
async def get_tree(
    execution_id: str,
    caller: Caller,
    client: Commands,
    max_nodes: Annotated[int, Query(ge=1, le=MAX_TREE_NODES)] = DEFAULT_TREE_NODES,
) -> Tree:
    nodes = await client.tree(execution_id, max_nodes=max_nodes)
    caller.visible(nodes[0].execution, execution_id)
    return Tree(nodes=[TreeNodeOut.of(n) for n in nodes if caller.may_see(n.execution)])


@router.get("/executions/{execution_id}/claim", response_model=ClaimHolder)
async def get_claim(execution_id: str, caller: Caller, store: Store) -> ClaimHolder:
    await _visible(store, caller, execution_id)
    claim = await store.get_claim_for_execution(execution_id)
    return ClaimHolder(claim=None if claim is None else ClaimOut.of(claim))


@router.get("/executions/{execution_id}/recoveries", response_model=Recoveries)
async def get_recoveries(execution_id: str, caller: Caller, store: Store) -> Recoveries:
    await _visible(store, caller, execution_id)
    records = await store.get_recovery_history(execution_id)
    return Recoveries(items=[RecoveryOut.of(r) for r in records])


@router.post("/executions/{execution_id}/start", response_model=Started)
async def start_execution(
    execution_id: str, caller: Caller, store: Store, client: Commands
) -> Started:
    await _visible(store, caller, execution_id)
    return Started(started=await client.start(execution_id))


@router.post("/executions/{execution_id}/stop", response_model=ExecutionOut)
async def stop_execution(
    execution_id: str, caller: Caller, store: Store, client: Commands, body: OptionalReason = None
) -> ExecutionOut:
    await _visible(store, caller, execution_id)
    await client.stop(execution_id, None if body is None else body.reason)
    return ExecutionOut.of(await client.get(execution_id))


@router.post("/executions/{execution_id}/pause", response_model=ExecutionOut)
async def pause_execution(
    execution_id: str, caller: Caller, store: Store, client: Commands, body: OptionalReason = None
) -> ExecutionOut:
    await _visible(store, caller, execution_id)
    await client.pause(execution_id, None if body is None else body.reason)
    return ExecutionOut.of(await client.get(execution_id))


@router.post("/executions/{execution_id}/resume", response_model=ExecutionOut)
async def resume_execution(
    execution_id: str, caller: Caller, store: Store, client: Commands
) -> ExecutionOut:
    await _visible(store, caller, execution_id)
    await client.resume(execution_id)
    return ExecutionOut.of(await client.get(execution_id))


@router.post("/executions/{execution_id}/retry", response_model=ExecutionOut)
async def retry_execution(
    execution_id: str, caller: Caller, store: Store, client: Commands, body: OptionalReason = None
) -> ExecutionOut:
    await _visible(store, caller, execution_id)
    await client.retry(execution_id, None if body is None else body.reason)
    return ExecutionOut.of(await client.get(execution_id))


@router.get("/flows/{flow_id}/executions", response_model=RootPage)
async def list_roots(
    flow_id: str,
    caller: Caller,
    store: Store,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the page before.")] = None,
    status: Annotated[ExecutionStatus | None, Query(description="Only roots in it.")] = None,
) -> RootPage:
    roots = await store.get_root_executions(
        flow_id,
        limit,
        decode_cursor(cursor),
        owner_id=caller.owner_filter,
        status=status,
    )
    next_cursor = encode_cursor(roots[-1]) if len(roots) == limit else None
    return RootPage(items=[RootOut.of(r) for r in roots], next_cursor=next_cursor)
