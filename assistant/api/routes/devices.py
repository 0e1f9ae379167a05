"""The home's devices: paired, online, present but unpaired; profiling one again; revoking one."""

from __future__ import annotations

import time

from fastapi import APIRouter, HTTPException, status

from assistant.api.deps import Authorized, StateDep
from assistant.api.schemas import DeviceOut

router = APIRouter(tags=["devices"])


def _devices(state: StateDep) -> list[DeviceOut]:
    online = set(state.manager.online())
    out: dict[str, DeviceOut] = {}
    for d in state.store.devices():
        s = state.coordinator.sessions.get(d.name)
        profile = {}
        if s is not None:
            profile = {
                "memory_mb": round(s.hello.memory_mb),
                "threads": s.hello.threads,
                "gflops": {
                    m: round(r.gflops, 1)
                    for (n, m), r in state.manager.measured.items()
                    if n == d.name
                },
            }
            link = state.manager.links.get(d.name)  # measured on the data plane (ring)
            if link is not None:
                profile["link_mbps"], profile["link_latency_ms"] = round(link[0]), round(link[1], 3)
        out[d.name] = DeviceOut(
            name=d.name,
            paired=True,
            revoked=d.revoked,
            online=d.name in online,
            paired_at=d.paired_at,
            last_seen=time.time() if d.name in online else d.last_seen,
            profile=profile,
        )
    if state.discovery is not None:  # present on the network, not paired (yet)
        for w in state.discovery.workers():
            name = w.properties.get("name", w.name)  # the device name, not the mDNS instance
            if name not in out:
                out[name] = DeviceOut(name=name, paired=False, revoked=False, online=False)
    return sorted(out.values(), key=lambda d: d.name)


@router.get("/devices")
def list_devices(state: StateDep, _: Authorized) -> list[DeviceOut]:
    return _devices(state)


@router.get("/devices/{name}")
def get_device(name: str, state: StateDep, _: Authorized) -> DeviceOut:
    for d in _devices(state):
        if d.name == name:
            return d
    raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no device named {name!r}")


@router.post("/devices/{name}/revoke")
async def revoke_device(name: str, state: StateDep, _: Authorized) -> DeviceOut:
    """Cut a device off at once: its certificate is refused from now on, its connections are
    closed, and the models are re-planned without it."""
    if state.store.device(name) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no paired device named {name!r}")
    state.store.revoke(name)
    await state.coordinator.disconnect(name, "revoked by the owner")
    state.manager.changed(name, False)
    return next(d for d in _devices(state) if d.name == name)


@router.post("/devices/{name}/profile", status_code=status.HTTP_202_ACCEPTED)
async def profile_device(name: str, state: StateDep, _: Authorized) -> dict[str, object]:
    """Measure an online device again (compute for every served model, and the links), then
    re-plan in the background; `GET /v1/plan` shows the re-plan's progress. (async: the
    re-plan is scheduled on the event loop.)"""
    if name not in state.manager.online():
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"{name!r} is not online")
    state.manager.reprofile(name)
    return {"device": name, "replan": state.manager.replan_status}
