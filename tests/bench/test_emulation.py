"""The emulated home: shaped links between namespaces, CPU quotas, fallback, clean-up.

Tests that need namespaces or cgroups skip (with the reason) unless run as root on a machine
that has them; the fallback tests run anywhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from galaxy_bench import emulation
from galaxy_bench.cgroups import cpu_cgroup_dir
from galaxy_bench.emulation import DeviceSpec, EmulationUnavailable, Home

CAPS = Home.available()
needs_netns = pytest.mark.skipif(CAPS["netns"] is not None, reason=f"netns: {CAPS['netns']}")
needs_cgroup = pytest.mark.skipif(CAPS["cgroup"] is not None, reason=f"cgroup: {CAPS['cgroup']}")

SERVER = """
import socket, sys, time
s = socket.create_server((sys.argv[1], 5201))
conn, _ = s.accept()
buf, got = bytearray(1 << 20), conn.recv(1)
t0, n = time.perf_counter(), len(got)
while k := conn.recv_into(buf):
    n += k
print(n, time.perf_counter() - t0)
"""
CLIENT = """
import socket, sys, time
deadline = time.monotonic() + 10
while True:
    try:
        c = socket.create_connection((sys.argv[1], 5201), timeout=10)
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.05)
c.sendall(b"x" * int(sys.argv[2]))
c.close()
"""
SPINNER = """
import sys, threading
def spin():
    while True:
        pass
threads = [threading.Thread(target=spin, daemon=True) for _ in range(2)]
for t in threads:
    t.start()
print(*(t.native_id for t in threads), flush=True)
sys.stdin.read()
"""


def owned_objects(tag: str) -> list[str]:
    """Namespaces, root-namespace links and cpu cgroups named after `tag`."""
    found = []
    ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    found += [w for w in ns.split() if w.startswith(f"{tag}-")]
    found += [w for w in links.replace("@", " ").split() if w.startswith(f"{tag}h")]
    base = cpu_cgroup_dir()
    if isinstance(base, Path):
        found += [d.name for d in base.iterdir() if d.name.startswith(f"{tag}-")]
    return found


def thread_cpu_s(pid: int, tid: int) -> float:
    return int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0]) / 1e9


@needs_netns
def test_two_namespaces_exchange_bytes_at_the_shaped_rate() -> None:
    home = Home([DeviceSpec("a", 1.0, 100), DeviceSpec("b", 1.0, 100)], cpu="none")
    with home:
        server = subprocess.Popen(
            [*home.prefix(1), sys.executable, "-c", SERVER, home.device_host(1)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        client = [*home.prefix(0), sys.executable, "-c", CLIENT, home.device_host(1), "5000000"]
        subprocess.run(client, check=True, timeout=15)
        out, _ = server.communicate(timeout=15)
    nbytes, seconds = out.split()
    mbps = int(nbytes) * 8 / float(seconds) / 1e6
    assert int(nbytes) == 5_000_000
    assert 60 <= mbps <= 110, f"{mbps:.1f} Mbit/s through a 100 Mbit/s link"


@needs_cgroup
def test_a_throttled_compute_thread_gets_its_share_of_a_core() -> None:
    home = Home([DeviceSpec("pi", 0.25, 100)], links="loopback", cpu="thread")
    with home:
        proc = subprocess.Popen(
            [*home.prefix(0), sys.executable, "-c", SPINNER],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            compute, other = map(int, proc.stdout.readline().split())
            home.throttle(0, proc.pid, compute)
            tasks = (home.cgroup(0) / "tasks").read_text().split()
            before, t0 = thread_cpu_s(proc.pid, compute), time.monotonic()
            time.sleep(1.0)
            share = (thread_cpu_s(proc.pid, compute) - before) / (time.monotonic() - t0)
        finally:
            proc.kill()
            proc.wait()
    assert tasks == [str(compute)], "only the compute thread is capped, not its siblings"
    assert str(other) not in tasks
    assert 0.15 <= share <= 0.40, f"a 0.25-core thread used {share:.2f} of a core"
    assert home.describe()["devices"][0]["cfs_quota_us"] == 2500


@needs_cgroup
def test_process_mode_caps_every_thread_of_the_process() -> None:
    with Home([DeviceSpec("pi", 0.25, 100)], links="loopback", cpu="process") as home:
        proc = subprocess.Popen(
            [sys.executable, "-c", SPINNER],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            compute, _ = map(int, proc.stdout.readline().split())
            home.throttle(0, proc.pid, compute)
            tasks = set((home.cgroup(0) / "tasks").read_text().split())
            threads = set(os.listdir(f"/proc/{proc.pid}/task"))
        finally:
            proc.kill()
            proc.wait()
    assert tasks == threads


@needs_netns
@needs_cgroup
def test_nothing_is_left_behind_after_an_exception_inside_the_home() -> None:
    home = Home([DeviceSpec("a", 0.5, 100), DeviceSpec("b", 0.25, 1000)])
    with pytest.raises(RuntimeError, match="boom"), home:
        assert len(owned_objects(home.tag)) == 3 + 1 + 2  # hub + 2 namespaces, veth, cgroups
        raise RuntimeError("boom")
    assert owned_objects(home.tag) == []


@needs_netns
@needs_cgroup
def test_leftovers_of_a_crashed_run_are_removed_on_entry() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid names the "crashed" run's objects
    stale = f"gx{dead.pid}"
    subprocess.run(["ip", "netns", "add", f"{stale}-d0"], check=True)
    base = cpu_cgroup_dir()
    assert isinstance(base, Path)
    (base / f"{stale}-d0").mkdir()
    try:
        with Home([DeviceSpec("a", 0.5, 100)]):
            left = owned_objects(stale)
    finally:
        emulation.remove_leftovers()
    assert left == []


def test_missing_capabilities_fall_back_to_loopback_and_sleep(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    missing = {"root": "not root (uid 1000)", "netns": "not root", "cgroup": "not root"}
    monkeypatch.setattr(Home, "available", staticmethod(lambda: missing))
    with Home([DeviceSpec("a", 0.5, 100), DeviceSpec("b", 0.25, 100)]) as home:
        assert (home.prefix(1), home.device_host(1), home.coordinator_host) == (
            [],
            "127.0.0.1",
            "127.0.0.1",
        )
        home.throttle(1, os.getpid(), os.getpid())  # the worker sleeps instead: a no-op
        described = home.describe()
    assert (described["links"], described["cpu"]) == ("loopback", "sleep")
    assert described["requested"] == {"links": "netns", "cpu": "thread"}
    assert described["fallback_reasons"] == {"links": "not root", "cpu": "not root"}


def test_strict_mode_refuses_to_fall_back(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = {"root": None, "netns": "missing tools: tc", "cgroup": None}
    monkeypatch.setattr(Home, "available", staticmethod(lambda: missing))
    with pytest.raises(EmulationUnavailable, match="missing tools: tc"):
        Home([DeviceSpec("a", 0.5, 100)], strict=True)


def test_a_fallback_home_says_sleep_emulation_and_fallback_in_its_label(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    missing = {"root": "not root (uid 1000)", "netns": "not root", "cgroup": "not root"}
    monkeypatch.setattr(Home, "available", staticmethod(lambda: missing))

    with Home([DeviceSpec("a", 0.5, 100)]) as home:
        label = home.describe()["label"]

    assert label.startswith("loopback links (not shaped), SLEEP emulation (not a real CPU cap)")
    assert "FALLBACK: namespaces unavailable (not root)" in label
