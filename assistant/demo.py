"""`galaxy demo`: a whole home on this machine.

Starts the gateway (HTTP API, TLS worker endpoint, mDNS on loopback) and N worker processes,
pairs each worker through the real pairing flow (one-time codes), asks one question across the
devices, prints the answer with its timings and plan, and serves until Ctrl-C.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from assistant.config import Settings
from assistant.launcher import RunningGateway


def run_demo(
    workers: int,
    port: int,
    question: str,
    max_tokens: int,
    echo: Callable[[str], None],
    data_dir: Path | None = None,
    serve: bool = True,
) -> dict[str, object]:
    root = data_dir or Path(tempfile.mkdtemp(prefix="galaxy-demo-"))
    settings = Settings(
        port=port,
        data_dir=root / "gateway",
        strategy="hmp" if workers > 1 else "auto",
    )
    echo(f"Galaxy Home demo: gateway + {workers} workers on this machine (data in {root})")
    echo("loading the packaged models (SmolLM2-135M, MiniLM)...")
    with RunningGateway(settings) as gw:
        echo(f"dashboard and API: {gw.url}/docs")
        echo(f"API token (shown once): {gw.token}")
        names = [f"worker-{i}" for i in range(workers)]
        echo(f"pairing {', '.join(names)} with one-time codes...")
        gw.add_workers(names, root / "workers")
        gw.wait_online(names)
        echo(
            f"online: {', '.join(d['name'] for d in gw.call('GET', '/v1/devices') if d['online'])}"
        )
        echo(f"\nQ: {question}")
        t0 = time.perf_counter()
        answer = gw.call("POST", "/v1/generate", {"prompt": question, "max_new_tokens": max_tokens})
        echo(f"A: {answer['text'].strip()}")
        t = answer["timings"]
        plan = answer["plan"]
        echo(
            f"   {len(answer['tokens'])} tokens in {time.perf_counter() - t0:.1f} s: prefill "
            f"{t.get('prefill_ms', 0):.0f} ms, {t.get('decode_ms_per_token', 0):.0f} ms/token; "
            f"plan {plan['strategy']} on {', '.join(plan['devices'])}, heads {plan['heads']}"
        )
        if serve:
            echo(
                f"\nserving at {gw.url} until Ctrl-C; try:\n  curl -s -H 'Authorization: Bearer "
                f"{gw.token}' -H 'Content-Type: application/json' -d "
                f"'{json.dumps({'prompt': 'Name three herbs for a kitchen garden.'})}' "
                f"{gw.url}/v1/generate"
            )
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                echo("stopping")
        return answer
