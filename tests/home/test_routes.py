"""The home's HTTP routes through a real gateway (uvicorn on a free port) started with the
sample home: token required, state read and changed, timers, errors as 404/422."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assistant.config import Settings
from assistant.errors import HomeFileError
from assistant.home.loader import sample_home_path
from assistant.launcher import RunningGateway
from assistant.main import create_app, make_state
from tests.gateway.conftest import gateway_settings


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    root = tmp_path_factory.mktemp("home-routes")
    with RunningGateway(gateway_settings(root, home_file=sample_home_path())) as running:
        yield running


def call(
    gw: RunningGateway,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = "default",
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    req = urllib.request.Request(
        gw.url + path, method=method, data=None if body is None else json.dumps(body).encode()
    )
    req.add_header("Content-Type", "application/json")
    tok = gw.token if token == "default" else token
    if tok:
        req.add_header("Authorization", f"Bearer {tok}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_the_home_needs_the_token(gw: RunningGateway) -> None:
    assert call(gw, "GET", "/v1/home", token=None)[0] == 401
    assert call(gw, "POST", "/v1/home/devices/light.hall", {"on": True}, token="nope")[0] == 401


def test_get_home_lists_areas_and_devices_with_state(gw: RunningGateway) -> None:
    code, home = call(gw, "GET", "/v1/home")

    assert code == 200
    assert home["name"] == "The Sample Home"
    assert len(home["areas"]) == 8 and len(home["devices"]) == 29
    garage = next(d for d in home["devices"] if d["id"] == "cover.garage_door")
    assert garage["state"] == {"open": False, "position": 0}
    assert garage["device_class"] == "garage" and home["home_assistant"] is None


def test_post_a_device_changes_it_and_answers_the_changes(gw: RunningGateway) -> None:
    code, answer = call(
        gw,
        "POST",
        "/v1/home/devices/light.garage",
        {"on": True, "brightness": 30},
        headers={"X-Request-ID": "req-route-1"},
    )

    assert code == 200
    assert answer["request_id"] == "req-route-1"
    assert answer["changes"] == [
        {"device": "light.garage", "attribute": "on", "old": False, "new": True},
        {"device": "light.garage", "attribute": "brightness", "old": 100, "new": 30},
    ]
    assert answer["state"] == {"on": True, "brightness": 30}
    _, log = call(gw, "GET", "/v1/home/changes?device=light.garage")
    assert {(c["request_id"], c["source"]) for c in log} == {("req-route-1", "api")}


def test_an_unknown_device_answers_404(gw: RunningGateway) -> None:
    code, answer = call(gw, "POST", "/v1/home/devices/light.attic", {"on": True})

    assert code == 404
    assert "no device 'light.attic'" in answer["detail"]


def test_an_invalid_value_answers_422_with_what_is_allowed(gw: RunningGateway) -> None:
    code, answer = call(gw, "POST", "/v1/home/devices/light.hall", {"brightness": 150})

    assert code == 422
    assert answer["detail"] == "The hall light's brightness goes from 0 to 100, not 150"


def test_a_read_only_sensor_answers_422(gw: RunningGateway) -> None:
    code, answer = call(gw, "POST", "/v1/home/devices/sensor.office_co2", {"value": 1})

    assert code == 422 and "read-only" in answer["detail"]


def test_timers_start_list_and_cancel(gw: RunningGateway) -> None:
    code, timer = call(gw, "POST", "/v1/home/timers", {"minutes": 5, "name": "pasta"})
    assert code == 201 and timer["status"] == "running" and timer["duration_s"] == 300

    listed = call(gw, "GET", "/v1/home/timers")[1]
    assert [t["id"] for t in listed] == [timer["id"]]

    code, cancelled = call(gw, "DELETE", f"/v1/home/timers/{timer['id']}")
    assert code == 200 and cancelled["status"] == "cancelled"
    assert call(gw, "GET", "/v1/home/timers")[1] == []
    assert call(gw, "GET", "/v1/home/timers?all=true")[1][0]["status"] == "cancelled"


def test_cancelling_an_unknown_timer_answers_404(gw: RunningGateway) -> None:
    assert call(gw, "DELETE", "/v1/home/timers/4040")[0] == 404


def test_a_timer_without_a_duration_answers_422(gw: RunningGateway) -> None:
    assert call(gw, "POST", "/v1/home/timers", {"name": "pasta"})[0] == 422


def test_refresh_without_a_bridge_reads_nothing(gw: RunningGateway) -> None:
    code, answer = call(gw, "POST", "/v1/home/refresh")

    assert code == 200 and answer["bridge"] is False and answer["changes"] == []


def test_a_bad_home_file_stops_the_gateway_at_start_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "home.yaml"
    bad.write_text("name: H\ndevices:\n  - {id: light.a, area: kitchn}\n")
    settings: Settings = gateway_settings(tmp_path, home_file=bad)

    with pytest.raises(HomeFileError, match=r"home.yaml line 3: .*unknown area 'kitchn'"):
        create_app(settings)


def test_without_a_home_file_the_home_is_empty_and_named_after_the_gateway(
    tmp_path: Path,
) -> None:
    state = make_state(gateway_settings(tmp_path, home_name="Flat 3"))
    assert state.home is not None

    snap = state.home.snapshot()

    assert (snap["name"], snap["areas"], snap["devices"]) == ("Flat 3", [], [])
    state.home.state.close()
    state.store.close()
