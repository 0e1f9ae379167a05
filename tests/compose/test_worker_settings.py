"""What a container needs from the worker, unit by unit: options from the environment's
formats, a wildcard gateway address made reachable, the data host found by route, and the
link status a health check reads."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import typer

from assistant.cli import _interfaces
from assistant.main import _wildcard
from edge_worker.service.pairing import reachable
from edge_worker.service.run import _resolve_data_host, link_status
from edge_worker.service.worker import Worker


def test_mdns_interfaces_are_read_as_the_gateway_writes_them_or_comma_separated() -> None:
    assert _interfaces('["all"]') == ["all"]
    assert _interfaces('["127.0.0.1", "192.168.1.20"]') == ["127.0.0.1", "192.168.1.20"]
    assert _interfaces("127.0.0.1,192.168.1.20") == ["127.0.0.1", "192.168.1.20"]


def test_a_malformed_interface_list_is_refused_with_the_reason() -> None:
    with pytest.raises(typer.BadParameter, match="not a JSON list"):
        _interfaces('["all"')


def test_a_wildcard_worker_url_takes_the_host_the_api_was_reached_on() -> None:
    got = reachable("wss://0.0.0.0:8765/worker", "http://192.168.1.5:8000")

    assert got == "wss://192.168.1.5:8765/worker"


def test_a_specific_worker_url_is_kept() -> None:
    got = reachable("wss://192.168.1.5:8765/worker", "http://10.0.0.9:8000")

    assert got == "wss://192.168.1.5:8765/worker"


def test_a_gateway_on_every_address_names_them_all_in_its_certificate() -> None:
    assert "127.0.0.1" in _wildcard("0.0.0.0")
    assert _wildcard("127.0.0.1") == []


def test_an_auto_data_host_becomes_the_address_on_the_route_to_the_gateway(
    tmp_path: Path,
) -> None:
    worker = Worker("attic", tmp_path, data_host="auto")

    _resolve_data_host(worker, "wss://127.0.0.1:8765/worker")

    assert worker.data_host == "127.0.0.1"
    assert worker.data_port > 0


def test_the_link_status_says_up_with_the_gateway_then_down(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    record = link_status(path, "attic")

    record("wss://127.0.0.1:8765/worker")
    up = json.loads(path.read_text())
    record(None)
    down = json.loads(path.read_text())

    assert (up["link"], up["gateway"], up["worker"], up["pid"]) == (
        "up",
        "wss://127.0.0.1:8765/worker",
        "attic",
        os.getpid(),
    )
    assert (down["link"], down["gateway"]) == ("down", None)
