"""A real gateway (uvicorn on a free port) with worker processes paired by one-time codes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.config import Settings
from assistant.launcher import RunningGateway


def gateway_settings(root: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "port": 0,
        "data_dir": root / "gateway",
        "strategy": "hmp",
        "queue_size": 8,
        "max_new_tokens": 64,
    }
    return Settings(**{**values, **overrides})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """A gateway with two paired workers, shared by the module's tests."""
    root = tmp_path_factory.mktemp("home")
    with RunningGateway(gateway_settings(root)) as gw:
        gw.add_workers(["kitchen-pi", "laptop"], root / "workers")
        gw.wait_online(["kitchen-pi", "laptop"])
        yield gw
