"""The dashboard's files and its events channel, without a browser: what the gateway serves at
`/` and `/static/`, and `WS /v1/events` (the app not started: no models, no workers)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse

from assistant.api.routes.dashboard import WEB
from assistant.home.loader import sample_home_path
from assistant.main import create_app
from tests.gateway.conftest import gateway_settings

SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # a name, never fetched


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = gateway_settings(tmp_path_factory.mktemp("assets"), home_file=sample_home_path())
    yield TestClient(create_app(settings))  # not started: no models, workers or voice


def token(client: TestClient) -> str:
    first = client.app.state.gateway.first_token  # type: ignore[attr-defined]
    assert isinstance(first, str)
    return first


def referenced(text: str) -> set[str]:
    """/static/... paths an HTML file names, and the modules a script imports."""
    names = set(re.findall(r'(?:src|href)="(/static/[^"]+)"', text))
    names |= {"/static/js/" + m for m in re.findall(r'from "\./([\w.-]+\.js)"', text)}
    names |= set(re.findall(r'addModule\("(/static/[^"]+)"\)', text))
    return names


def test_the_page_loads_without_a_token_and_allows_only_its_own_origin(
    client: TestClient,
) -> None:
    page = client.get("/")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy
    assert 'id="login-form"' in page.text


def test_every_file_the_page_uses_is_served_with_its_type_and_names_no_other_host(
    client: TestClient,
) -> None:
    todo, served = referenced(client.get("/").text), {}
    while todo:
        path = todo.pop()
        response = client.get(path)
        served[path] = (response.status_code, response.headers["content-type"].split(";")[0])
        todo |= referenced(response.text) - set(served)
        # A quoted or url(...) address of another host: "https://...", '//cdn...'.
        text = response.text.replace(SVG_NAMESPACE, "")
        other = re.search(r"""["'(`][ \t]*(?:https?:)?//""", text)
        assert other is None, f"{path} names another host: {other}"

    assert {p for p, (status, _) in served.items() if status != 200} == set()
    assert served["/static/js/app.js"][1] == "text/javascript"
    assert served["/static/js/recorder-worklet.js"][1] == "text/javascript"
    assert served["/static/style.css"][1] == "text/css"
    on_disk = {"/static/" + str(p.relative_to(WEB)) for p in WEB.rglob("*.*")} - {
        "/static/index.html"
    }
    assert on_disk == set(served)  # nothing shipped that the page does not use


def test_a_path_out_of_the_web_folder_is_not_served(client: TestClient) -> None:
    escaped = client.get("/static/%2e%2e/api/routes/dashboard.py")
    missing = client.get("/static/js/nothing.js")

    assert (escaped.status_code, missing.status_code) == (404, 404)


def test_the_events_channel_answers_401_without_a_token(client: TestClient) -> None:
    with (
        pytest.raises(WebSocketDenialResponse) as refused,
        client.websocket_connect("/v1/events?token=not-the-token"),
    ):
        pass

    assert refused.value.status_code == 401


def test_the_events_channel_pushes_a_home_change_as_it_happens(client: TestClient) -> None:
    auth = {"Authorization": f"Bearer {token(client)}"}
    with client.websocket_connect(f"/v1/events?token={token(client)}") as ws:
        assert ws.receive_json()["type"] == "hello"

        client.post("/v1/home/devices/light.hall", json={"on": True}, headers=auth)

        event = ws.receive_json()
    assert event["type"] == "home" and event["kind"] == "changes"
    assert {"device": "light.hall", "attribute": "on", "old": False, "new": True} in (
        event["changes"]
    )


def test_the_events_channel_says_when_a_request_was_logged(client: TestClient) -> None:
    store = client.app.state.gateway.store  # type: ignore[attr-defined]
    with client.websocket_connect(f"/v1/events?token={token(client)}") as ws:
        assert ws.receive_json()["type"] == "hello"

        row = store.log_request("generate", "smollm2-135m", "ok", {"total_ms": 12.5}, None)

        event = ws.receive_json()
    assert event == {
        "type": "request",
        "id": row,
        "kind": "generate",
        "model": "smollm2-135m",
        "status": "ok",
        "total_ms": 12.5,
    }
