"""The error tree through the API (assistant/api/errors.py): a permanent refusal is a 4xx with
its message and no Retry-After; only transient trouble is a 503."""

from __future__ import annotations

from pathlib import Path

from assistant.api.errors import status_of
from assistant.errors import DeadlineExceeded, PairingRateLimited, QueueFull, UnknownModel
from assistant.launcher import RunningGateway
from edge_worker.errors import PlanError, WorkerLost
from tests.gateway.conftest import gateway_settings
from tests.gateway.test_api import raw


def test_each_kind_of_error_has_its_status() -> None:
    assert status_of(UnknownModel("m")) == (404, None)
    assert status_of(PlanError("no split fits")) == (422, None)
    assert status_of(QueueFull("busy")) == (503, 2.0)
    assert status_of(DeadlineExceeded("late")) == (503, 5.0)
    assert status_of(WorkerLost("kitchen-pi")) == (503, 5.0)
    assert status_of(PairingRateLimited("slow down", 42.0)) == (429, 42.0)


def test_an_unknown_model_and_an_impossible_plan_are_4xx(tmp_path: Path) -> None:
    """A home whose only device keeps all its memory for itself (`--reserve-mb`): no plan fits,
    which is permanent until the home changes, so the API says so instead of 'retry'."""
    settings = gateway_settings(tmp_path, strategy="auto")
    with RunningGateway(settings) as gw:
        gw.add_workers(["kitchen-pi"], tmp_path / "workers", extra=["--reserve-mb", "1000000"])
        gw.wait_online(["kitchen-pi"])

        unknown = raw(gw, "POST", "/v1/embed", b'{"texts": ["hi"], "model": "gpt-17"}', gw.token)
        impossible = raw(
            gw, "POST", "/v1/embed", b'{"texts": ["turn on the porch light"]}', gw.token
        )

    status, payload, headers = unknown
    assert status == 404 and "not served" in payload["detail"]
    status, payload, headers = impossible
    assert status == 422, payload
    assert "no split fits" in payload["detail"] and "add a device" in payload["detail"]
    assert "Retry-After" not in headers
