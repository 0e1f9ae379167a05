"""`galaxy bench --soak`: requests keep coming while workers die.

A gateway (`RunningGateway`, strategy hmp: every plan spans every online worker, so every kill
lands in the requests in flight) with three paired worker processes on loopback. `clients`
threads send a fixed mix, alternately `POST /v1/embed` (MiniLM) and greedy `POST /v1/generate`
(SmolLM2, `max_new_tokens` tokens), each checked against the single-device Hugging Face model
(`soak_traffic.References`): embeddings within `EMBED_ATOL`, generated tokens equal. A killer
thread sends SIGKILL to one worker every `kill_every_s` seconds (round robin) and starts it
again at once with the same name and data dir: it rejoins with its credentials, nothing is
paired again.

Each request ends as ok, unavailable (503 with Retry-After), wrong, lost or hung
(`soak_traffic.py` says exactly when).

A fault window runs from a kill until the restarted worker is online again and the re-plan its
return triggered has finished (every served model's plan includes it). A request overlapping a
fault window counts as "during faults", any other as calm. Added latency during faults, per
kind: p95 of the right answers during faults minus the median of the calm ones; the headline
is the larger of the two kinds.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from assistant.cluster.remote import WorkerProcess
from assistant.config import Settings
from assistant.launcher import RunningGateway
from galaxy_bench.soak_traffic import HUNG_MARGIN_S, Outcome, References, Request, ask, mix
from galaxy_bench.voice_report import percentiles

WORKERS = ("soak-0", "soak-1", "soak-2")


@dataclass
class Fault:
    worker: str
    killed_s: float
    online_s: float | None = None  # the restarted worker registered again
    recovered_s: float | None = None  # ... and every served model's plan includes it again


class Killer(threading.Thread):
    """SIGKILL one worker every `every_s` seconds (round robin) and start it again at once."""

    def __init__(self, gw: RunningGateway, root: Path, every_s: float, t0: float) -> None:
        super().__init__(name="soak-killer", daemon=True)
        self.gw, self.root, self.every_s, self.t0 = gw, root, every_s, t0
        self.faults: list[Fault] = []
        self.stop = threading.Event()

    def run(self) -> None:
        next_kill = time.monotonic() + self.every_s
        for i in itertools.count():
            if self.stop.wait(max(0.0, next_kill - time.monotonic())):
                return
            slot = i % len(self.gw.workers)
            victim = self.gw.workers[slot]
            fault = Fault(victim.name, time.monotonic() - self.t0)
            self.faults.append(fault)
            next_kill = time.monotonic() + self.every_s
            victim.proc.send_signal(signal.SIGKILL)
            victim.proc.wait()
            self.gw.workers[slot] = restart(self.gw, victim, self.root)
            # One fault at a time: the next kill waits for this one's recovery if it is late.
            self._wait_recovered(fault)

    def _wait_recovered(self, fault: Fault, timeout_s: float = 180.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self.stop.is_set():
            online, planned = plans_include(self.gw, fault.worker)
            if online and fault.online_s is None:
                fault.online_s = time.monotonic() - self.t0
            if planned:
                fault.recovered_s = time.monotonic() - self.t0
                return
            time.sleep(0.2)


def plans_include(gw: RunningGateway, *workers: str) -> tuple[bool, bool]:
    """(every one of `workers` is online, ... and no re-plan is pending or running and every
    served model's plan includes them)."""
    plan = gw.call("GET", "/v1/plan")
    online = set(workers) <= set(plan["workers_online"])
    models, plans = set(gw.state.manager.models), plan["plans"]
    planned = (
        online
        and plan["replan"]["state"] == "idle"
        and models <= set(plans)
        and all(set(workers) <= set(plans[m]["devices"]) for m in models)
    )
    return online, planned


def restart(gw: RunningGateway, old: WorkerProcess, root: Path) -> WorkerProcess:
    """The same worker again: same name and data dir, its saved credentials (no pairing)."""
    cmd = [
        *(sys.executable, "-m", "assistant.cli", "worker", "--gateway", gw.url),
        *("--name", old.name, "--data-dir", str(root / old.name), "--threads", "1"),
    ]
    with open(old.log_path, "ab") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT)
    return WorkerProcess(old.name, proc, old.log_path)


def settings_for(root: Path, deadline_s: float) -> Settings:
    return Settings(
        port=0,
        data_dir=root / "gateway",
        strategy="hmp",
        queue_size=8,
        max_new_tokens=64,
        request_timeout_s=deadline_s,
    )


def run_soak(
    out: Path | None,
    echo: Callable[[str], None],
    *,
    requests: int = 300,
    kill_every_s: float = 20.0,
    clients: int = 3,
    max_new_tokens: int = 8,
    deadline_s: float = 60.0,
    refs: References | None = None,
) -> dict[str, Any]:
    """Soak until `requests` requests have been answered (or not) and at least one kill
    happened; returns (and writes to `out`) the report; prints its table. The gateway's and
    workers' data (logs, shard copies: gigabytes) live in a temporary directory removed at
    the end; `refs` spares computing the references again."""
    if refs is None:
        echo(f"soak: computing the single-device references (max_new_tokens={max_new_tokens})")
        refs = References.compute(max_new_tokens)
    with (
        tempfile.TemporaryDirectory(prefix="galaxy-soak-", ignore_cleanup_errors=True) as tmp,
        RunningGateway(settings_for(Path(tmp), deadline_s)) as gw,
    ):
        root = Path(tmp)
        echo(f"soak: gateway + {len(WORKERS)} workers on loopback, strategy hmp (data in {root})")
        gw.add_workers(list(WORKERS), root / "workers")
        gw.wait_online(list(WORKERS))
        warm_up(gw, refs, max_new_tokens)
        outcomes, faults, wall = soak(
            gw, refs, root / "workers", requests, kill_every_s, clients, max_new_tokens, deadline_s
        )
    result = summarize(outcomes, faults, wall)
    result["setting"] = (
        f"gateway + 3 paired worker processes on loopback (no link or CPU emulation), strategy "
        f"hmp, {clients} clients, embed (MiniLM) and greedy generate (SmolLM2, "
        f"max_new_tokens={max_new_tokens}) alternately, SIGKILL + restart of one worker every "
        f"{kill_every_s:.0f} s, request deadline {deadline_s:.0f} s, 2 cores"
    )
    if out is not None:
        out.write_text(json.dumps(result, indent=1))
    echo(table(result))
    return result


def warm_up(gw: RunningGateway, refs: References, max_new_tokens: int) -> None:
    """Every served model planned on every worker and answering right before the clock starts
    (the first plans profile the workers and ship every shard: minutes on a busy machine)."""
    deadline = time.monotonic() + 900
    for request in (Request("embed", 0), Request("generate", 0)):
        while (outcome := ask(gw, request, refs, max_new_tokens, 900, 0.0)).result != "ok":
            if outcome.result != "unavailable" or time.monotonic() > deadline:
                raise RuntimeError(f"warm-up {request.kind} failed: {outcome}")
    while not plans_include(gw, *WORKERS)[1]:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the plans did not include {WORKERS} in 900 s")
        time.sleep(0.5)


def soak(
    gw: RunningGateway,
    refs: References,
    workers_dir: Path,
    requests: int,
    kill_every_s: float,
    clients: int,
    max_new_tokens: int,
    deadline_s: float,
) -> tuple[list[Outcome], list[Fault], float]:
    """The clients and the killer; returns the outcomes, the faults and the wall time (s)."""
    t0 = time.monotonic()
    todo, lock = mix(), threading.Lock()
    outcomes: list[Outcome] = []
    killer = Killer(gw, workers_dir, kill_every_s, t0)

    def client() -> None:
        while True:
            with lock:
                if len(outcomes) + started[0] >= requests and killer.faults:
                    return
                request = next(todo)
                started[0] += 1
            outcome = ask(gw, request, refs, max_new_tokens, deadline_s + HUNG_MARGIN_S, t0)
            with lock:
                started[0] -= 1
                outcomes.append(outcome)

    started = [0]
    threads = [threading.Thread(target=client, name=f"soak-client-{i}") for i in range(clients)]
    killer.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    killer.stop.set()
    killer.join(240)
    return outcomes, killer.faults, time.monotonic() - t0


def during_faults(o: Outcome, faults: list[Fault], wall: float) -> bool:
    for f in faults:
        end = f.recovered_s if f.recovered_s is not None else wall
        if o.start_s < end and o.end_s > f.killed_s:
            return True
    return False


def summarize(outcomes: list[Outcome], faults: list[Fault], wall: float) -> dict[str, Any]:
    counts = {k: 0 for k in ("ok", "unavailable", "wrong", "lost", "hung")}
    for o in outcomes:
        counts[o.result] += 1
    latency: dict[str, dict[str, Any]] = {}
    added: dict[str, float | None] = {}
    for kind in ("embed", "generate"):
        ok = [o for o in outcomes if o.kind == kind and o.result == "ok"]
        calm = [o.ms for o in ok if not during_faults(o, faults, wall)]
        hit = [o.ms for o in ok if during_faults(o, faults, wall)]
        latency[kind] = {"calm": percentiles(calm), "during_faults": percentiles(hit)}
        if calm and hit:
            added[kind] = round(percentiles(hit)["p95"] - percentiles(calm)["p50"], 1)
        else:
            added[kind] = None
    worst = max((v for v in added.values() if v is not None), default=None)
    recovered = [f.recovered_s - f.killed_s for f in faults if f.recovered_s is not None]
    return {
        "wall_s": round(wall, 1),
        "requests": len(outcomes),
        "counts": counts,
        "kills": len(faults),
        "faults": [asdict(f) for f in faults],
        "recovery_s": percentiles(recovered),
        "answered_after_failover": sum(1 for o in outcomes if o.failovers),
        "latency_ms": latency,
        "added_latency_ms": {**added, "headline": worst},
        "acceptance": {
            "at_least_300_requests": len(outcomes) >= 300,
            "none_lost_wrong_or_hung": counts["lost"] + counts["wrong"] + counts["hung"] == 0,
            "added_p95_under_1500_ms": worst is not None and worst < 1500,
        },
        "outcomes": [asdict(o) for o in outcomes],
    }


def table(result: dict[str, Any]) -> str:
    c = result["counts"]
    lines = [
        f"soak: {result['requests']} requests in {result['wall_s']:.0f} s, "
        f"{result['kills']} workers killed (SIGKILL) and restarted",
        f"  ok {c['ok']}, 503 with Retry-After {c['unavailable']}, wrong {c['wrong']}, "
        f"lost {c['lost']}, hung {c['hung']}; answered after a failover: "
        f"{result['answered_after_failover']}",
        f"  kill -> restarted worker back in every plan: {result['recovery_s']}",
        "",
        "| ms (right answers) | n | p50 | p90 | p95 | max |",
        "|---|---|---|---|---|---|",
    ]
    for kind, by in result["latency_ms"].items():
        for when, p in by.items():
            if p:
                label = f"{kind}, {when.replace('_', ' ')}"
                lines.append(
                    f"| {label} | {p['n']} | {p['p50']} | {p['p90']} | {p['p95']} | {p['max']} |"
                )
    added = result["added_latency_ms"]
    lines += [
        "",
        "added latency during faults, p95(during) - p50(calm): "
        + ", ".join(f"{k} {v} ms" for k, v in added.items() if k != "headline"),
        f"acceptance: {result['acceptance']}",
    ]
    return "\n".join(lines)
