"""`GET /metrics` of a real gateway with the sample home and one real worker: the token rule,
the Prometheus text format, and counters that move as requests are served."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from assistant.home.loader import sample_home_path
from assistant.launcher import RunningGateway
from assistant.main import create_app
from tests.gateway.conftest import gateway_settings

pytestmark = pytest.mark.slow
WORKER = "metrics-pi"
Key = tuple[str, frozenset[tuple[str, str]]]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    root = tmp_path_factory.mktemp("metrics")
    with RunningGateway(gateway_settings(root, home_file=sample_home_path())) as gw:
        gw.add_workers([WORKER], root / "workers")
        gw.wait_online([WORKER])
        yield gw


def get(gw: RunningGateway, path: str, token: str | None) -> tuple[int, str, str]:
    req = urllib.request.Request(gw.url + path)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.headers["content-type"], resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["content-type"], exc.read().decode()


def scrape(gw: RunningGateway) -> dict[Key, float]:
    """Every sample of /metrics, parsed by prometheus_client's own parser."""
    status, _, text = get(gw, "/metrics", gw.token)
    assert status == 200, text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict[Key, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_need_the_token_by_default(home: RunningGateway) -> None:
    without, _, _ = get(home, "/metrics", None)
    wrong, _, _ = get(home, "/metrics", "not-the-token")
    with_token, content_type, _ = get(home, "/metrics", home.token)

    assert (without, wrong, with_token) == (401, 401, 200)
    assert content_type.startswith("text/plain")


def test_metrics_are_open_when_the_setting_says_so(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    settings = gateway_settings(tmp_path_factory.mktemp("open"), metrics_require_token=False)
    app = TestClient(create_app(settings))  # not started: /metrics answers from the app alone

    response = app.get("/metrics")

    assert response.status_code == 200
    assert "galaxy_workers_online 0.0" in response.text


def test_metrics_parse_and_show_the_worker_online(home: RunningGateway) -> None:
    samples = scrape(home)

    names = {name for name, _ in samples}
    assert value(samples, "galaxy_workers_online") == 1
    assert value(samples, "galaxy_queue_capacity") == home.settings.queue_size
    assert {"galaxy_requests_in_flight", "galaxy_replans_total"} <= names


def test_an_assist_request_moves_its_route_counter_and_stage_histograms(
    home: RunningGateway,
) -> None:
    before = scrape(home)

    home.call("POST", "/v1/assist", {"text": "turn on the kitchen lights"})

    after = scrape(home)
    route = {"method": "POST", "route": "/v1/assist", "status": "200"}
    name = "galaxy_http_requests_total"
    assert value(after, name, **route) == value(before, name, **route) + 1
    assert value(after, "galaxy_requests_total", kind="assist", status="ok") == (
        value(before, "galaxy_requests_total", kind="assist", status="ok") + 1
    )
    for stage, moved in {"intent": 1, "tts": 1, "total": 1, "stt": 0}.items():
        count = "galaxy_stage_duration_seconds_count"
        assert value(after, count, kind="assist", stage=stage) == (
            value(before, count, kind="assist", stage=stage) + moved
        ), stage


def test_an_embedding_on_the_worker_moves_prefill_and_the_workers_device_counters(
    home: RunningGateway,
) -> None:
    before = scrape(home)

    home.call("POST", "/v1/embed", {"texts": ["turn off the porch light", "is it raining"]})

    after = scrape(home)
    count = "galaxy_stage_duration_seconds_count"
    assert value(after, count, kind="embed", stage="cluster_prefill") == (
        value(before, count, kind="embed", stage="cluster_prefill") + 1
    )
    for counter in ("galaxy_device_compute_seconds_total", "galaxy_device_busy_seconds_total"):
        assert value(after, counter, device=WORKER) > value(before, counter, device=WORKER)
    assert value(after, "galaxy_plan_devices", model="minilm", strategy="hmp") == 1


def test_refused_and_unknown_paths_are_counted_by_template_and_status(
    home: RunningGateway,
) -> None:
    before = scrape(home)

    with pytest.raises(urllib.error.HTTPError):
        home.call("POST", "/v1/home/devices/light.nowhere", {"on": True})
    for _ in range(2):
        get(home, "/no/such/path/x", home.token)

    after = scrape(home)
    name = "galaxy_http_requests_total"
    refused = {"method": "POST", "route": "/v1/home/devices/{device_id}", "status": "404"}
    unknown = {"method": "GET", "route": "unmatched", "status": "404"}
    assert value(after, name, **refused) == value(before, name, **refused) + 1
    assert value(after, name, **unknown) == value(before, name, **unknown) + 2
    assert not any("/no/such" in str(labels) for _, labels in after)
