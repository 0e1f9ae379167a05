"""`galaxy demo`: a whole home on this machine.

Starts the gateway (HTTP API, TLS worker endpoint, mDNS on loopback) with the sample home and
N worker processes, pairs each worker through the real pairing flow (one-time codes), waits for
the models to be deployed, asks one question across the devices, speaks one command from a WAV
file it synthesises, prints what each did with its timings and plan, and serves until Ctrl-C.
"""

from __future__ import annotations

import json
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

from assistant.config import Settings
from assistant.home.loader import sample_home_path
from assistant.launcher import RunningGateway
from edge_worker.errors import GalaxyError

COMMAND = "turn on the kitchen lights"


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
        home_file=sample_home_path(),
        wyoming=True,
    )
    echo(f"Galaxy Home demo: gateway + {workers} workers on this machine (data in {root})")
    echo("loading the packaged models (SmolLM2-135M, MiniLM)...")
    with RunningGateway(settings) as gw:
        echo(f"dashboard: {gw.url}/ (log in with the API token below); API: {gw.url}/docs")
        wyoming = gw.state.extras.get("wyoming")
        echo(f"Wyoming (Home Assistant's voice services): {wyoming.uri if wyoming else 'off'}")
        echo(f"API token (shown once): {gw.token}")
        names = [f"worker-{i}" for i in range(workers)]
        echo(f"pairing {', '.join(names)} with one-time codes...")
        gw.add_workers(names, root / "workers")
        gw.wait_online(names)
        echo(
            f"online: {', '.join(d['name'] for d in gw.call('GET', '/v1/devices') if d['online'])}"
        )
        wait_deployed(gw, echo)
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
        speak_a_command(gw, root, echo)
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


def speak_a_command(
    gw: RunningGateway, root: Path, echo: Callable[[str], None], command: str = COMMAND
) -> dict[str, object]:
    """Say `command` (synthesised here by the assistant's own voice into a WAV file), send it
    to `POST /v1/assist/audio` as a household's microphone would, and show what happened."""
    voice = gw.state.voice
    assert voice is not None and voice.tts is not None, "the gateway has started its voice"
    recording = root / "command.wav"
    recording.write_bytes(voice.tts.synthesize(command))
    echo(f'\nspeaking a command from {recording}: "{command}"')
    req = urllib.request.Request(
        gw.url + "/v1/assist/audio", data=recording.read_bytes(), method="POST"
    )
    req.add_header("Content-Type", "audio/wav")
    req.add_header("Authorization", f"Bearer {gw.token}")
    with urllib.request.urlopen(req, timeout=300) as resp:
        turn: dict[str, Any] = json.loads(resp.read())
    intent, t = turn["intent"] or {}, turn["timings"]
    echo(f"  transcript: {turn['transcript']!r}")
    echo(f"  intent: {intent.get('name')} {intent.get('slots')} (from {intent.get('source')})")
    for c in turn["changes"]:
        echo(f"  changed: {c['device']} {c['attribute']}: {c['old']} -> {c['new']}")
    echo(f"  reply: {turn['reply']['text']!r}")
    if turn["reply"]["audio_url"]:
        req = urllib.request.Request(gw.url + turn["reply"]["audio_url"])
        req.add_header("Authorization", f"Bearer {gw.token}")
        with urllib.request.urlopen(req, timeout=60) as resp:
            (root / "reply.wav").write_bytes(resp.read())
        echo(f"  reply audio: {gw.url}{turn['reply']['audio_url']} (saved as {root / 'reply.wav'})")
    echo(
        f"  {t['total_ms']:.0f} ms: speech-to-text {t['stt_ms']:.0f}, intent {t['intent_ms']:.0f}, "
        f"cluster {t['cluster_ms']:.0f}, text-to-speech {t['tts_ms']:.0f}"
    )
    return turn


def wait_deployed(gw: RunningGateway, echo: Callable[[str], None], timeout: float = 600) -> None:
    """Wait until every served model is planned and its shards are on the workers, showing
    the shards' transfer as a progress bar: the household's first request should not wait
    for a deployment."""
    models = set(gw.call("GET", "/v1/health")["models"])
    echo(f"planning {', '.join(sorted(models))} and shipping shards to the workers...")
    deadline = time.monotonic() + timeout
    columns = (TextColumn("  {task.description}"), BarColumn(), DownloadColumn())
    with Progress(*columns, transient=True) as bars:
        tasks: dict[str, object] = {}
        while True:
            state = gw.call("GET", "/v1/plan")
            for name, t in state["transfers"].items():
                if name not in tasks:
                    tasks[name] = bars.add_task(f"shard -> {name}", total=t["total_mb"] * 2**20)
                bars.update(tasks[name], completed=t["sent_mb"] * 2**20)  # type: ignore[arg-type]
            if models <= set(state["plans"]) and state["replan"]["state"] == "idle":
                break
            if time.monotonic() > deadline:
                raise GalaxyError(f"the models were not deployed within {timeout:.0f} s")
            time.sleep(0.2)
    for model, plan in sorted(state["plans"].items()):
        echo(f"  {model}: {plan['strategy']} on {', '.join(plan['devices'])}")
