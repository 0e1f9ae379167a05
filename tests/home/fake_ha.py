"""A small local server that answers as Home Assistant's REST API does, for the bridge's tests.

Home Assistant itself cannot run here (no network to install it, and far too heavy for a test),
so this serves the part of its REST API the bridge uses, as documented at
https://developers.home-assistant.io/docs/api/rest/: `GET /api/` and `GET /api/states` (a list
of state objects `{"entity_id", "state", "attributes"}`), and `POST /api/services/<domain>/
<service>` with a JSON body holding `entity_id` (answers the list of states it changed). Every
call needs `Authorization: Bearer <token>` (401 otherwise); an unknown service answers 400.
Light brightness is HA's 0-255, media volume 0-1, as in HA.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class FakeHomeAssistant:
    token: str = "ha-secret"
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    failing: set[str] = field(default_factory=set)  # entity ids whose calls answer 500

    def entity(self, entity_id: str, state: str, **attributes: Any) -> None:
        self.states[entity_id] = {"entity_id": entity_id, "state": state, "attributes": attributes}

    def serve(self) -> ThreadingHTTPServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet test output
                pass

            def answer(self, code: int, body: Any) -> None:
                raw = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def authorized(self) -> bool:
                if self.headers.get("Authorization") == f"Bearer {fake.token}":
                    return True
                self.answer(401, {"message": "401: Unauthorized"})
                return False

            def do_GET(self) -> None:
                if not self.authorized():
                    return
                if self.path == "/api/":
                    self.answer(200, {"message": "API running."})
                elif self.path == "/api/states":
                    self.answer(200, list(fake.states.values()))
                else:
                    self.answer(404, {"message": "Not found"})

            def do_POST(self) -> None:
                if not self.authorized():
                    return
                parts = self.path.strip("/").split("/")
                if len(parts) != 4 or parts[:2] != ["api", "services"]:
                    self.answer(404, {"message": "Not found"})
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                domain, service = parts[2], parts[3]
                if body.get("entity_id") in fake.failing:
                    self.answer(500, {"message": "Error handling request"})
                    return
                changed = fake.apply(domain, service, body)
                if changed is None:
                    self.answer(400, {"message": f"Service {domain}.{service} not found."})
                    return
                fake.calls.append((domain, service, body))
                self.answer(200, changed)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def apply(self, domain: str, service: str, data: dict[str, Any]) -> list[Any] | None:
        """HA's effect of one service call on the entity's state; None: no such service."""
        eid = data["entity_id"]
        st = self.states.setdefault(eid, {"entity_id": eid, "state": "unknown", "attributes": {}})
        attrs = st["attributes"]
        if (domain, service) in {("light", "turn_on"), ("switch", "turn_on"), ("fan", "turn_on")}:
            st["state"] = "on"
            if "brightness_pct" in data:
                attrs["brightness"] = round(data["brightness_pct"] * 255 / 100)
            if "percentage" in data:
                attrs["percentage"] = data["percentage"]
        elif service == "turn_off" and domain in ("light", "switch", "fan"):
            st["state"] = "off"
            attrs.pop("brightness", None)
        elif (domain, service) == ("lock", "lock"):
            st["state"] = "locked"
        elif (domain, service) == ("lock", "unlock"):
            st["state"] = "unlocked"
        elif domain == "cover" and service in ("open_cover", "close_cover", "set_cover_position"):
            position = {"open_cover": 100, "close_cover": 0}.get(service, data.get("position"))
            attrs["current_position"] = position
            st["state"] = "open" if position else "closed"
        elif (domain, service) == ("climate", "set_temperature"):
            attrs["temperature"] = data["temperature"]
        elif domain == "media_player" and service in ("media_play", "media_pause"):
            st["state"] = "playing" if service == "media_play" else "paused"
        elif (domain, service) == ("media_player", "volume_set"):
            attrs["volume_level"] = data["volume_level"]
        elif domain == "media_player" and service in ("media_next_track", "media_previous_track"):
            pass
        else:
            return None
        return [st]
