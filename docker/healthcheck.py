"""The image's HEALTHCHECK, for both roles (standard library only: it runs every 15 s).

The role is read from the container's main command line (PID 1, or its child under
`init: true`):
- `galaxy gateway`: healthy when GET /v1/health answers "ok" on GALAXY_HOST:GALAXY_PORT
  (a wildcard host is asked on 127.0.0.1);
- `galaxy worker`: healthy when `$GALAXY_WORKER_DATA_DIR/status.json`, which the worker rewrites
  whenever its control link to the gateway goes up or down (edge_worker/service/run.py), says
  "up" and names a live process. A worker waiting to be paired is not healthy yet.
Exit 0 healthy, 1 not, with one line saying why.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from pathlib import Path


def role() -> str:
    """'gateway' or 'worker': the first galaxy subcommand among the container's processes."""
    for pid in sorted((p for p in os.listdir("/proc") if p.isdigit()), key=int):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        for arg in argv:
            if arg in (b"gateway", b"worker"):
                return arg.decode()
    return "gateway"


def gateway() -> tuple[bool, str]:
    host = os.environ.get("GALAXY_HOST", "127.0.0.1")
    host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    url = f"http://{host}:{os.environ.get('GALAXY_PORT', '8000')}/v1/health"
    try:
        with urllib.request.urlopen(url, timeout=4) as resp:
            body = json.loads(resp.read())
    except (OSError, ValueError) as exc:
        return False, f"{url}: {exc}"
    return body.get("status") == "ok", f"{url}: {body}"


def worker() -> tuple[bool, str]:
    directory = os.environ.get("GALAXY_WORKER_DATA_DIR", "~/.local/share/galaxy-home/worker")
    path = Path(directory).expanduser() / "status.json"
    try:
        status = json.loads(path.read_text())
        os.kill(int(status["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return False, f"{path}: {exc}"
    return status.get(
        "link"
    ) == "up", f"control link {status.get('link')} ({status.get('gateway')})"


if __name__ == "__main__":
    healthy, why = gateway() if role() == "gateway" else worker()
    print(why)
    sys.exit(0 if healthy else 1)
