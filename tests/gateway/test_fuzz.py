"""Fuzz the OpenAPI schema with schemathesis: whatever the input, never a 500."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.launcher import RunningGateway
from tests.gateway.conftest import gateway_settings


@pytest.mark.slow
@pytest.mark.long
def test_schemathesis_finds_no_server_error(tmp_path: Path) -> None:
    # No workers: requests run on the gateway's own device; small limits keep valid cases fast.
    settings = gateway_settings(tmp_path, max_new_tokens=4, max_text_chars=200)
    cli = shutil.which("schemathesis", path=os.path.dirname(sys.executable))
    assert cli is not None, "schemathesis is a dev dependency: make test installs it"
    with RunningGateway(settings) as gw:
        out = subprocess.run(
            [
                cli,
                "run",
                f"{gw.url}/openapi.json",
                "--checks",
                "not_a_server_error",
                "--max-examples",
                "30",
                "--header",
                f"Authorization: Bearer {gw.token}",
                "--request-timeout",
                "120",
                "--seed",
                "1",
                "--workers",
                "1",
            ],
            capture_output=True,
            text=True,
            timeout=900,
            cwd=tmp_path,
        )

    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
