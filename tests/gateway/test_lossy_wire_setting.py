"""GALAXY_LOSSY_WIRE: the most lossy activation format the gateway's planner may choose."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from assistant.config import Settings


def test_lossy_wire_is_off_unless_the_owner_allows_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GALAXY_LOSSY_WIRE", raising=False)
    assert Settings().lossy_wire == "off"
    monkeypatch.setenv("GALAXY_LOSSY_WIRE", "int8")
    assert Settings().lossy_wire == "int8"
    monkeypatch.setenv("GALAXY_LOSSY_WIRE", "int4")
    with pytest.raises(ValidationError):
        Settings()
