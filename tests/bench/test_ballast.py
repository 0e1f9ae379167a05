"""The ballast (`galaxy bench --ballast`): a device's waits on the ring spend its CPU quota.

Real processes and a real cgroup quota; skips (with the reason) unless run as root on a machine
with cgroup v1's cpu controller.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge_worker.comm import waits
from galaxy_bench.ballast import BALLAST_CPU, process_state
from galaxy_bench.emulation import DeviceSpec, EmulationUnavailable, Home

CAPS = Home.available()
needs_cgroup = pytest.mark.skipif(CAPS["cgroup"] is not None, reason=f"cgroup: {CAPS['cgroup']}")

# A compute thread as the worker runs it: it blocks on "the ring" (stdin) inside `blocking()`.
COMPUTE = """
import sys, threading
from edge_worker.comm import waits
threading.Thread(target=threading.Event().wait, daemon=True).start()  # a link thread, say
tid = threading.get_native_id()
print(tid, waits.ballast_from_env(tid), flush=True)
sys.stdin.readline()
with waits.blocking():
    print("waiting", flush=True)
    sys.stdin.readline()
print("resumed", flush=True)
sys.stdin.readline()
"""


def cpu_s(pid: int) -> float:
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9


def share_over(pid: int, seconds: float) -> float:
    before, t0 = cpu_s(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_s(pid) - before) / (time.monotonic() - t0)


def test_without_a_ballast_a_wait_announces_nothing() -> None:
    assert waits.ballast_from_env(1) is None
    with waits.blocking():
        pass


def test_a_ballast_needs_quotas_on_the_compute_thread() -> None:
    with pytest.raises(EmulationUnavailable, match="compute thread"):
        Home([DeviceSpec("pi", 0.25, 100)], links="loopback", cpu="none", ballast=True)


@needs_cgroup
def test_the_ballast_spends_the_quota_only_while_the_compute_thread_waits() -> None:
    home = Home([DeviceSpec("pi", 0.25, 100)], links="loopback", cpu="thread", ballast=True)
    with home:
        assert home.ballasts is not None
        ballast = home.ballasts.pid(0)
        proc = subprocess.Popen(
            [*home.prefix(0), sys.executable, "-c", COMPUTE],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert proc.stdin is not None and proc.stdout is not None
        try:
            tid, told = map(int, proc.stdout.readline().split())
            home.throttle(0, proc.pid, tid)
            tasks = set((home.cgroup(0) / "tasks").read_text().split())
            cpus = {int(t.name): os.sched_getaffinity(int(t.name)) for t in task_dirs(proc.pid)}
            ballast_cpus = os.sched_getaffinity(ballast)
            idle = share_over(ballast, 0.5)
            proc.stdin.write("go\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "waiting"
            waiting = share_over(ballast, 1.0)
            proc.stdin.write("\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "resumed"
            time.sleep(0.1)
            stopped, after = process_state(ballast), share_over(ballast, 0.5)
        finally:
            proc.kill()
            proc.wait()
        assert "ballast" in home.label
    assert told == ballast, "the worker learns its ballast from the command prefix"
    assert tasks == {str(tid), str(ballast)}, "the ballast shares the compute thread's group"
    assert idle < 0.02 and after < 0.02 and stopped == "T"
    assert 0.15 <= waiting <= 0.40, f"a 0.25-core device's ballast used {waiting:.2f} of a core"
    # The ballast spins on its own CPU, which the worker's other threads keep off.
    everywhere = os.sched_getaffinity(0)
    assert len(cpus) == 2 and cpus.pop(tid) == everywhere
    if len(everywhere) > 1:
        assert cpus.popitem()[1] == everywhere - {BALLAST_CPU}
        assert ballast_cpus == {BALLAST_CPU}


def task_dirs(pid: int) -> list[Path]:
    return list(Path(f"/proc/{pid}/task").iterdir())
