"""Our TCP ring against torch.distributed gloo, on the same (emulated) links.

    with Home(devices, cpu="none") as home:
        rows = run_transport_bench(home, sizes_mb=(1, 2, 4, 8), reps=5)

Starts one process per device of `home` (`home.prefix(i)`, data planes bound to
`home.device_host(i)`, gloo on `home.interface(i)`), each running `transport_rank`. No CPU
quota is applied: this compares transports on links alone. Both transports move float32 with
an even split; MB is 10^6 bytes, Mbit 10^6 bits.

One row per (transport, op, size):

    {"transport": "ring" | "gloo", "op": "all_gather" | "reduce_scatter" | "all_reduce",
     "mb_per_rank", "world_size", "latency_ms_median", "latency_ms_all",
     "bandwidth_mbps", "wire_ms", "algbw_MBps", "busbw_MBps", "links", "note"}

A rep's latency is the slowest rank's time for the call. `mb_per_rank` is each rank's share
(the all-gather input, the reduce-scatter output); `algbw_MBps` = world_size x mb / latency
(nccl-tests' algorithm bandwidth), `busbw_MBps` = algbw x (N-1)/N, the rate each link
carried, comparable with the link's `bandwidth_mbps` / 8. `wire_ms` = (N-1) x mb over the
slowest link, the ring's lower bound (None when links are not shaped). gloo substitutes
all_reduce for reduce_scatter only if this torch lacks it, and says so in `note`.

Bounded: every wait in a rank has a deadline, and the whole run has one (`timeout_s`, else
estimated from sizes and link speed); on expiry or any rank's failure every rank is killed
and TransportBenchFailed carries the ranks' log tails.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from galaxy_bench.emulation import Home
from galaxy_bench.errors import TransportBenchFailed
from galaxy_bench.transport_rank import MARKER, TOKEN_ENV

__all__ = ["TransportBenchFailed", "run_transport_bench", "summarise"]

log = logging.getLogger(__name__)
_PACKAGE_PARENT = Path(__file__).resolve().parents[1]  # ranks import galaxy_bench from here
_START_S = 60.0  # n processes importing torch on a small machine


def _budget(home: Home, sizes_mb: Sequence[float], reps: int) -> float:
    n = len(home.devices)
    mbps = min(d.bandwidth_mbps for d in home.devices) if home.links == "netns" else 1000.0
    per_call = [(n - 1) * mb * 8 / mbps for mb in sizes_mb]  # seconds at the link rate
    return _START_S + sum(4 * (reps + 1) * (5 * s + 0.5) for s in per_call)


def run_transport_bench(
    home: Home,
    sizes_mb: Sequence[float] = (1, 2, 4, 8),
    reps: int = 5,
    *,
    timeout_s: float | None = None,
) -> list[dict[str, Any]]:
    """Measure ring and gloo all_gather / reduce_scatter on `home`'s links (see module doc)."""
    n = len(home.devices)
    if n < 2:
        raise ValueError("the transport benchmark needs at least two devices")
    if not sizes_mb or reps < 1:
        raise ValueError(f"need sizes and reps >= 1, got sizes {sizes_mb}, reps {reps}")
    budget = timeout_s or _budget(home, sizes_mb, reps)
    deadline = time.monotonic() + budget
    token = secrets.token_hex(32)
    with tempfile.TemporaryDirectory(prefix="galaxy-transport-") as tmp:
        logs = [Path(tmp) / f"rank{i}.log" for i in range(n)]
        out = Path(tmp) / "rank0.out"
        procs: list[subprocess.Popen[bytes]] = []
        try:
            for i in range(n):
                cmd = [
                    *home.prefix(i), sys.executable, "-m", "galaxy_bench.transport_rank",
                    "--rank", str(i), "--world", str(n), "--store", str(Path(tmp) / "store"),
                    "--host", home.device_host(i), "--sizes", ",".join(f"{s:g}" for s in sizes_mb),
                    "--reps", str(reps), "--timeout", f"{max(budget, 1.0):.1f}",
                ]  # fmt: skip
                env = {
                    **os.environ, TOKEN_ENV: token, "GLOO_SOCKET_IFNAME": home.interface(i),
                    "OMP_NUM_THREADS": "1",
                    "PYTHONPATH": os.pathsep.join(
                        [str(_PACKAGE_PARENT), *filter(None, [os.environ.get("PYTHONPATH")])]
                    ),
                }  # fmt: skip
                with open(logs[i], "wb") as err, open(out if i == 0 else os.devnull, "wb") as so:
                    procs.append(subprocess.Popen(cmd, stdout=so, stderr=err, env=env))
            _wait(procs, deadline, logs, budget)
            result = _parse(out.read_text(), logs)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                p.wait(10)
    return summarise(result, home)


def _tail(path: Path, chars: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def _wait(
    procs: list[subprocess.Popen[bytes]], deadline: float, logs: list[Path], budget: float
) -> None:
    while any(p.poll() is None for p in procs):
        failed = [i for i, p in enumerate(procs) if p.returncode not in (None, 0)]
        if failed:
            i = failed[0]
            raise TransportBenchFailed(
                f"transport rank {i} exited with status {procs[i].returncode}:\n{_tail(logs[i])}"
            )
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- rank {i}\n{_tail(p, 600)}" for i, p in enumerate(logs))
            raise TransportBenchFailed(
                f"transport benchmark did not finish within {budget:.0f} s (a link stalled or "
                f"the machine is overloaded; pass a larger timeout_s):\n{tails}"
            )
        time.sleep(0.1)
    failed = [i for i, p in enumerate(procs) if p.returncode != 0]
    if failed:
        i = failed[0]
        raise TransportBenchFailed(
            f"transport rank {i} exited with status {procs[i].returncode}:\n{_tail(logs[i])}"
        )


def _parse(stdout: str, logs: list[Path]) -> dict[str, Any]:
    for line in stdout.splitlines():
        if line.startswith(MARKER):
            parsed: dict[str, Any] = json.loads(line[len(MARKER) :])
            return parsed
    raise TransportBenchFailed(f"rank 0 reported no results:\n{_tail(logs[0])}")


def summarise(result: dict[str, Any], home: Home) -> list[dict[str, Any]]:
    """Rows (see module doc) from rank 0's report: per rep the slowest rank, then the median."""
    n = int(result["world_size"])
    shaped = home.links == "netns"
    mbps = min(d.bandwidth_mbps for d in home.devices) if shaped else None
    notes: dict[str, str] = result.get("notes", {})
    rows = []
    for key, per_rank in result["times"].items():
        transport, op, mb_text = key.split("|")
        mb = float(mb_text)
        reps = [max(ms) for ms in zip(*per_rank, strict=True)]
        median = statistics.median(reps)
        algbw = n * mb / (median / 1e3)
        note = notes.get(f"{transport}|{op}")
        rows.append({
            "transport": transport,
            "op": "all_reduce" if note else op,
            "mb_per_rank": mb,
            "world_size": n,
            "latency_ms_median": round(median, 3),
            "latency_ms_all": [round(ms, 3) for ms in reps],
            "bandwidth_mbps": mbps,
            "wire_ms": round((n - 1) * mb * 8 / mbps * 1e3, 3) if mbps else None,
            "algbw_MBps": round(algbw, 2),
            "busbw_MBps": round(algbw * (n - 1) / n, 2),
            "links": home.links,
            "note": note,
        })  # fmt: skip
    return rows
