"""The home over HTTP: its areas and devices with their state, changing a device, timers, the
change log, and reading Home Assistant's states again. Every route needs the API token.

Errors are the home's own (`UnknownDevice` 404, `InvalidAction` 422, `Unavailable` 503 when
Home Assistant does not answer), mapped once in assistant/api/errors.py. A request may carry
`X-Request-ID`; otherwise one is made. The change log records it with every change.

Every route is `async def`: the home's listeners and timer task live on the event loop, and a
plain `def` route would run in a worker thread (its SQLite calls are short).
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Path, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from assistant.api.deps import Authorized, StateDep
from assistant.api.guard import GuardedRoute
from assistant.errors import Unavailable
from assistant.home.actions import HomeService

router = APIRouter(tags=["home"], route_class=GuardedRoute)

AttributeValue = bool | int | float | str | None


def get_home(state: StateDep) -> HomeService:
    if state.home is None:
        raise Unavailable("the home is not loaded yet; retry in a moment", retry_after_s=1.0)
    return state.home


HomeDep = Annotated[HomeService, Depends(get_home)]


def request_id(x_request_id: Annotated[str | None, Header(max_length=100)] = None) -> str:
    return x_request_id or uuid.uuid4().hex


RequestId = Annotated[str, Depends(request_id)]


class AreaOut(BaseModel):
    id: str
    name: str
    aliases: list[str]


class HomeDeviceOut(BaseModel):
    id: str
    name: str
    domain: str
    area: str | None
    aliases: list[str]
    device_class: str | None
    state: dict[str, Any]


class TimerOut(BaseModel):
    id: int
    name: str | None
    duration_s: float
    started: float = Field(description="wall clock, seconds since the epoch")
    ends: float
    status: str = Field(description="running | cancelled | finished")
    settled: float | None
    remaining_s: float


class HomeOut(BaseModel):
    name: str
    digest: str = Field(description="sha256 of the home file")
    areas: list[AreaOut]
    devices: list[HomeDeviceOut]
    timers: list[TimerOut] = Field(description="the running timers")
    home_assistant: dict[str, Any] | None = Field(
        description="the bridge's URL and last error; null when the bridge is off"
    )


class ChangeOut(BaseModel):
    device: str
    attribute: str
    old: Any
    new: Any


class DeviceChangeOut(BaseModel):
    request_id: str
    device: str
    changes: list[ChangeOut] = Field(description="empty when the device already was so")
    state: dict[str, Any] = Field(description="the device's state after the request")


class LoggedChangeOut(ChangeOut):
    id: int
    time: float
    request_id: str
    source: str


class TimerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hours: float = Field(0, ge=0, le=24)
    minutes: float = Field(0, ge=0, le=24 * 60)
    seconds: float = Field(0, ge=0, le=24 * 3600)
    name: str | None = Field(None, max_length=100, description="e.g. pasta")

    @model_validator(mode="after")
    def _some_time(self) -> TimerIn:
        if self.total_s <= 0:
            raise ValueError("give hours, minutes or seconds: a timer needs a duration")
        return self

    @property
    def total_s(self) -> float:
        return self.hours * 3600 + self.minutes * 60 + self.seconds


class RefreshOut(BaseModel):
    request_id: str
    bridge: bool = Field(description="false: no Home Assistant bridge is configured")
    changes: list[ChangeOut]


@router.get("/home")
async def get_home_state(home: HomeDep, _: Authorized) -> HomeOut:
    """The areas, the devices with their current state, and the running timers."""
    return HomeOut.model_validate(home.snapshot())


@router.post("/home/devices/{device_id}")
async def set_device(
    device_id: str,
    values: Annotated[
        dict[str, AttributeValue],
        Body(
            description="the attributes to set; the rest keep their value",
            examples=[{"on": True, "brightness": 30}],
            max_length=16,
        ),
    ],
    home: HomeDep,
    rid: RequestId,
    _: Authorized,
) -> DeviceChangeOut:
    """Change one device, with the validation a spoken command gets: 404 for an unknown
    device, 422 for an attribute or value it does not take (the message says what it takes),
    503 when the Home Assistant bridge is on and HA did not do it."""
    changes = await home.set(device_id, dict(values), rid, source="api")
    return DeviceChangeOut(
        request_id=rid,
        device=device_id,
        changes=[ChangeOut(**asdict(c)) for c in changes],
        state=home.state_of(device_id),
    )


@router.get("/home/changes")
async def list_changes(
    home: HomeDep,
    _: Authorized,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    device: str | None = None,
) -> list[LoggedChangeOut]:
    """The change log, the most recent first (optionally of one device)."""
    return [LoggedChangeOut(**asdict(c)) for c in home.state.changes(limit, device)]


@router.get("/home/timers")
async def list_timers(
    home: HomeDep, _: Authorized, all_: Annotated[bool, Query(alias="all")] = False
) -> list[TimerOut]:
    """The running timers, the soonest to end first; `all=true` adds the recently settled."""
    now = home.clock()
    return [TimerOut(**t.to_dict(now)) for t in home.timers(running_only=not all_)]


@router.post("/home/timers", status_code=201)
async def start_timer(body: TimerIn, home: HomeDep, rid: RequestId, _: Authorized) -> TimerOut:
    timer = home.start_timer(body.total_s, body.name, rid, source="api")
    return TimerOut(**timer.to_dict(home.clock()))


@router.delete("/home/timers/{timer_id}")
async def cancel_timer(
    timer_id: Annotated[int, Path(ge=1, le=2**62)], home: HomeDep, rid: RequestId, _: Authorized
) -> TimerOut:
    """Cancel a running timer: 404 for an unknown id, 422 for one already settled."""
    timer = home.cancel_timer(timer_id, rid, source="api")
    return TimerOut(**timer.to_dict(home.clock()))


@router.post("/home/refresh")
async def refresh(home: HomeDep, rid: RequestId, _: Authorized) -> RefreshOut:
    """Read Home Assistant's states into the home now (503 when HA does not answer)."""
    changes = await home.refresh(rid)
    return RefreshOut(
        request_id=rid,
        bridge=home.bridge is not None,
        changes=[ChangeOut(**asdict(c)) for c in changes],
    )
