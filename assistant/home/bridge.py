"""The optional bridge to a real Home Assistant, through its REST API.

On when the settings `ha_url` and `ha_token` are both set. Each change the home makes is first
sent to HA as service calls (`POST /api/services/<domain>/<service>` with `{"entity_id": ...}`
and `Authorization: Bearer <token>`); HA's states are read back with `GET /api/states` at start
and on demand (`HomeService.refresh`). Entity ids are the home file's device ids.

HA's REST API is plain JSON over HTTP: urllib in a worker thread does it, so the product needs
no HTTP client package. HA's failures are translated here, once: no answer, a refused token or
a 5xx raise `Unavailable` (the gateway answers 503; HA may come back); a 400/404 for a call
(a service the entity does not support) raises `InvalidAction`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.error
import urllib.request
from typing import Any

from assistant.errors import InvalidAction, Unavailable
from assistant.home.model import Device

log = logging.getLogger(__name__)

Call = tuple[str, str, dict[str, Any]]  # (domain, service, service data)
RETRY_S = 10.0  # Home Assistant restarting takes about this long


def calls_for(device: Device, old: dict[str, Any], new: dict[str, Any]) -> list[Call]:
    """The HA service calls that take `device` from `old` to `new` (pure: no I/O)."""
    d, eid = device.domain, {"entity_id": device.id}
    changed = {k for k in new if new.get(k) != old.get(k)}
    if not changed:
        return []
    if d in ("light", "fan"):
        level, key = (
            ("brightness", "brightness_pct") if d == "light" else ("percentage", "percentage")
        )
        if not new["on"]:
            return [(d, "turn_off", eid)] if old.get("on") else []
        return [(d, "turn_on", {**eid, key: new[level]})]
    if d == "switch":
        return [(d, "turn_on" if new["on"] else "turn_off", eid)]
    if d == "lock":
        return [(d, "lock" if new["locked"] else "unlock", eid)]
    if d == "cover":
        if "position" not in changed:
            return []
        if new["position"] == 100:
            return [(d, "open_cover", eid)]
        if new["position"] == 0:
            return [(d, "close_cover", eid)]
        return [(d, "set_cover_position", {**eid, "position": new["position"]})]
    if d == "climate":
        if "target_temperature" not in changed:
            return []
        return [(d, "set_temperature", {**eid, "temperature": new["target_temperature"]})]
    if d == "media_player":
        calls: list[Call] = []
        if "volume" in changed:
            calls.append((d, "volume_set", {**eid, "volume_level": new["volume"] / 100}))
        if "track" in changed:
            step = new["track"] - old["track"]
            service = "media_next_track" if step > 0 else "media_previous_track"
            calls += [(d, service, eid)] * abs(step)
        if "playing" in changed:
            calls.append((d, "media_play" if new["playing"] else "media_pause", eid))
        return calls
    return []  # sensors are read-only


def from_ha(device: Device, ha: dict[str, Any]) -> dict[str, Any]:
    """The attributes of our state that an HA state object gives (empty when HA does not know
    the entity's state: "unavailable", "unknown")."""
    state, attrs = ha.get("state"), ha.get("attributes") or {}
    if state in (None, "unavailable", "unknown"):
        return {}
    d, out = device.domain, {}
    if d in ("light", "switch", "fan"):
        out["on"] = state == "on"
    if d == "light" and isinstance(attrs.get("brightness"), int | float):
        out["brightness"] = round(attrs["brightness"] * 100 / 255)
    if d == "fan" and isinstance(attrs.get("percentage"), int | float):
        out["percentage"] = round(attrs["percentage"])
    if d == "lock" and state in ("locked", "unlocked"):
        out["locked"] = state == "locked"
    if d == "cover":
        position = attrs.get("current_position")
        if isinstance(position, int | float):
            out["position"] = round(position)
            out["open"] = position > 0
        elif state in ("open", "closed", "opening", "closing"):
            out["open"] = state in ("open", "opening")
            out["position"] = 100 if out["open"] else 0
    if d == "climate":
        pairs = (("target_temperature", "temperature"), ("current_temperature",) * 2)
        for ours, theirs in pairs:
            if isinstance(attrs.get(theirs), int | float):
                out[ours] = float(attrs[theirs])
    if d == "media_player":
        if state in ("playing", "paused", "idle", "on", "off"):
            out["playing"] = state == "playing"
        if isinstance(attrs.get("volume_level"), int | float):
            out["volume"] = round(attrs["volume_level"] * 100)
    if d == "sensor":
        out["value"] = _number_or_text(state)
        if isinstance(attrs.get("unit_of_measurement"), str):
            out["unit"] = attrs["unit_of_measurement"]
    return out


def _number_or_text(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() and "." not in value else number


class HomeAssistantBridge:
    """Service calls to, and states from, one Home Assistant server."""

    def __init__(self, url: str, token: str, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self.timeout_s = timeout_s
        self.last_error: str | None = None
        self.last_ok: float | None = None

    def status(self) -> dict[str, Any]:
        return {"url": self.url, "last_ok": self.last_ok, "last_error": self.last_error}

    async def forward(self, device: Device, old: dict[str, Any], new: dict[str, Any]) -> None:
        """Make HA do what the change asks of `device`, call by call."""
        for domain, service, data in calls_for(device, old, new):
            await self.request("POST", f"/api/services/{domain}/{service}", data)

    async def states(self) -> dict[str, dict[str, Any]]:
        """HA's state objects by entity id."""
        answer = await self.request("GET", "/api/states")
        if not isinstance(answer, list):
            raise self._failed("GET /api/states", "the answer is not a list of states")
        return {s["entity_id"]: s for s in answer if isinstance(s, dict) and "entity_id" in s}

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        return await asyncio.to_thread(self._request, method, path, body)

    def _request(self, method: str, path: str, body: Any) -> Any:
        what = f"{method} {path}"
        req = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode("utf-8", "replace").strip()
            if exc.code == 401:
                raise self._failed(
                    what,
                    "the token was refused (401); set GALAXY_HA_TOKEN to "
                    "a long-lived access token from your HA profile",
                ) from exc
            if exc.code in (400, 404):
                self.last_error = f"{what}: HTTP {exc.code} {detail}"
                log.warning("Home Assistant refused %s: HTTP %s %s", what, exc.code, detail)
                raise InvalidAction(
                    f"Home Assistant refused {what} (HTTP {exc.code}: {detail or exc.reason})"
                ) from exc
            raise self._failed(what, f"HTTP {exc.code} {detail or exc.reason}") from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise self._failed(what, f"no answer ({reason})") from exc
        try:
            answer = json.loads(raw) if raw else None
        except ValueError as exc:
            raise self._failed(what, "the answer is not JSON") from exc
        self.last_ok, self.last_error = time.time(), None
        return answer

    def _failed(self, what: str, why: str) -> Unavailable:
        self.last_error = f"{what}: {why}"
        log.warning("Home Assistant at %s: %s: %s", self.url, what, why)
        return Unavailable(
            f"Home Assistant at {self.url} did not do {what}: {why}; the device is unchanged",
            retry_after_s=RETRY_S,
        )
