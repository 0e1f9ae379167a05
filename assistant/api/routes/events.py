"""`WS /v1/events?token=...`: what changed, pushed to the dashboard as it happens.

Server -> client, JSON text frames (the client sends nothing):
    {"type": "hello", "interval_s": 1.0}
    {"type": "home", "kind", "time", "request_id", "source", "changes": [...], "timer"}
        a device or timer changed (HomeService.subscribe), whoever changed it
    {"type": "request", "id", "kind", "model", "status", "total_ms"}
        a request was written to the request log (Store.on_request); GET /v1/requests has it
    {"type": "cluster"}
        the devices, pairing requests or plans changed: GET /v1/devices, /v1/pairing/requests
        and /v1/plan have the new state

Home and request events are pushed the moment they happen. The cluster has no single place
that announces its changes (the coordinator, the re-planner, pairing and discovery each change
a part), so each connection compares a digest of what the dashboard shows (online workers,
paired devices, pending requests, plans, re-plan progress, shard transfers) every
`interval_s` and says "cluster" when it moved: a change shows within a second, and nothing is
sent while nothing changes.

The token comes as `Authorization: Bearer` or `?token=` (browsers cannot set headers on a
websocket). Without a valid one the upgrade is answered 401, like every other API call.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from typing import Any

import anyio
from fastapi import APIRouter, WebSocket, WebSocketDisconnect, status
from fastapi.responses import JSONResponse

from assistant.api.routes.stream import authorized
from assistant.api.state import GatewayState

router = APIRouter(tags=["events"])
log = logging.getLogger(__name__)
INTERVAL_S = 1.0  # how often a connection looks for cluster changes
BACKLOG = 512  # events queued for a slow client; past that it is told to resync


@router.websocket("/events")
async def events(ws: WebSocket) -> None:
    state: GatewayState = ws.app.state.gateway
    if not authorized(ws, state):
        await _deny(ws)
        return
    await ws.accept()
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(BACKLOG)

    def push(event: dict[str, Any]) -> None:  # on the event loop
        try:
            queue.put_nowait(event)
        except asyncio.QueueFull:  # a stalled client: it refetches everything on "resync"
            _drain(queue)
            queue.put_nowait({"type": "resync"})

    def push_soon(event: dict[str, Any]) -> None:
        """From any thread (a request is logged from a route's worker thread too)."""
        with contextlib.suppress(RuntimeError):  # the loop closed: the gateway is stopping
            loop.call_soon_threadsafe(push, event)

    def on_home(event: Any) -> None:
        push_soon({"type": "home", **event.to_dict()})

    def on_request(record: dict[str, Any]) -> None:
        timings = record.get("timings") or {}
        event = {k: record.get(k) for k in ("id", "kind", "model", "status")}
        push_soon(event | {"type": "request", "total_ms": timings.get("total_ms")})

    unsubscribe = state.home.subscribe(on_home) if state.home is not None else None
    listeners = state.store.on_request
    listeners.append(on_request)
    try:
        await ws.send_json({"type": "hello", "interval_s": INTERVAL_S})
        # anyio, as Starlette itself: the sender and the watcher end with the connection.
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_send, ws, queue)
            tasks.start_soon(_watch, state, push)
            await _until_closed(ws)
            tasks.cancel_scope.cancel()
    except WebSocketDisconnect:
        pass  # the client went while the hello was on its way
    finally:
        if on_request in listeners:
            listeners.remove(on_request)
        if unsubscribe is not None:
            unsubscribe()


async def _deny(ws: WebSocket) -> None:
    """Refuse the upgrade with 401 (as the HTTP routes do), or close with 1008 when the server
    cannot answer a websocket with an HTTP response."""
    answer = JSONResponse(
        {"detail": "missing or invalid API token: pass it as ?token=<token>"},
        status_code=status.HTTP_401_UNAUTHORIZED,
    )
    try:
        await ws.send_denial_response(answer)
    except RuntimeError:
        await ws.close(status.WS_1008_POLICY_VIOLATION, "missing or invalid API token")


def _drain(queue: asyncio.Queue[dict[str, Any]]) -> None:
    while not queue.empty():
        queue.get_nowait()


async def _send(ws: WebSocket, queue: asyncio.Queue[dict[str, Any]]) -> None:
    with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):  # the client went
        while True:
            await ws.send_json(await queue.get())


async def _until_closed(ws: WebSocket) -> None:
    with contextlib.suppress(WebSocketDisconnect):
        while (await ws.receive())["type"] != "websocket.disconnect":
            pass  # the client has nothing to say; reading notices when it goes


async def _watch(state: GatewayState, push: Any) -> None:
    last = cluster_digest(state)
    while True:
        await asyncio.sleep(INTERVAL_S)
        now = cluster_digest(state)
        if now != last:
            last = now
            push({"type": "cluster"})


def cluster_digest(state: GatewayState) -> str:
    """A digest of everything the Devices and Plan views show (on the event loop)."""
    manager = state.manager
    discovered: list[str] = []
    if state.discovery is not None:
        with contextlib.suppress(Exception):  # discovery is a convenience
            discovered = sorted(w.name for w in state.discovery.workers())
    seen = {
        "online": manager.online(),
        "devices": [(d.name, d.revoked) for d in state.store.devices()],
        "pending": [r.id for r in state.store.pairing_requests()],
        "discovered": discovered,
        "plans": {m: d.describe() for m, d in manager.deployments.items()},
        "replan": manager.replan_status,
        "transfers": dict(state.coordinator.transfers),
        "measured": sorted(f"{n}/{m}" for n, m in manager.measured),
        "links": manager.links,
    }
    return hashlib.sha256(json.dumps(seen, sort_keys=True, default=str).encode()).hexdigest()
