"""An emulated home on one machine: a shaped link and a CPU quota per device.

    with Home([DeviceSpec("pi", 0.15, 100), DeviceSpec("pc", 0.5, 1000)]) as home:
        cmd = [*home.prefix(i), sys.executable, ...]  # a process "on" device i
        # it binds home.device_host(i) and reaches the machine at home.coordinator_host
        home.throttle(i, pid, compute_tid)             # cap its compute thread at `speed` cores
        report["emulation"] = home.describe()

links="netns": namespace gx<pid>-hub holds the bridge gxbr; device i gets namespace
gx<pid>-d<i> whose interface eth0 (10.77.k.(10+i)/24) is one end of a veth, the other end a
bridge port. tc tbf at the device's rate shapes both directions: on eth0 (upload) and on the
bridge port (download). The machine (coordinator, gateway) joins the bridge through the veth
gx<pid>h with 10.77.k.1, so every address sits on one subnet of one bridge: no forwarding, no
routes, no iptables. The hub namespace turns bridge netfilter (net.bridge.bridge-nf-call-*,
a per-namespace setting) off, so a host firewall never sees bridged frames. k is the first
10.77.k.0/24 that no interface or route of the machine overlaps (or pass `subnet`).
links="loopback": every address is 127.0.0.1, nothing is shaped.

cpu="thread": one cgroup v1 cpu group per device, period `cfs_period_us` (10 ms), quota
speed x period; `throttle` moves only the compute thread (tid into `tasks`), so the device's
socket threads are not starved. cpu="process": the whole process (`cgroup.procs`).
cpu="sleep": nothing here, the worker sleeps after each compute step. cpu="none": no limit.

When namespaces or cgroups are unavailable (not root, a tool missing, no cgroup v1 cpu
controller, or setting up fails) the Home falls back to links="loopback" and cpu="sleep",
logs a warning and records why in `describe()`; `strict=True` raises EmulationUnavailable.

Cleanup: every object is named gx<pid>... and removed on exit, also after an exception in the
`with` body and at interpreter exit; entering a Home first removes the leftovers of Homes whose
process is gone (`remove_leftovers`).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import ipaddress
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from edge_worker.errors import GalaxyError

__all__ = ["DeviceSpec", "EmulationError", "EmulationUnavailable", "Home", "remove_leftovers"]

log = logging.getLogger(__name__)

LinkMode = Literal["netns", "loopback"]
CpuMode = Literal["thread", "process", "sleep", "none"]
_OWNED = re.compile(r"^gx(\d+)(?:-hub|-d\d+|h)$")  # gx<pid>-hub, gx<pid>-d<i>, gx<pid>h
_LOCK_PATH = Path("/run/gx-home.lock")
_CMD_TIMEOUT_S = 10.0
_BRIDGE, _PORT, _DEV_IF = "gxbr", "gxp", "eth0"
_NO_BRIDGE_NETFILTER = (  # per network namespace: frames on our bridge skip the host firewall
    "for k in iptables ip6tables arptables; do f=/proc/sys/net/bridge/bridge-nf-call-$k; "
    '[ ! -e "$f" ] || echo 0 > "$f"; done'
)
_MIN_BURST_BYTES = 64 * 1024  # >= one GSO segment; smaller bursts stall the queue


class EmulationError(GalaxyError):
    """Setting up or applying the emulation failed."""


class EmulationUnavailable(EmulationError):
    """A requested emulation needs a capability this machine or user lacks (strict mode)."""


@dataclass(frozen=True)
class DeviceSpec:
    """One emulated device: `speed` cores for its compute thread, a link of `bandwidth_mbps`
    (Mbit/s, each direction)."""

    name: str
    speed: float
    bandwidth_mbps: float

    def __post_init__(self) -> None:
        if self.speed <= 0 or self.bandwidth_mbps <= 0:
            raise ValueError(f"{self.name}: speed and bandwidth must be positive, got {self}")


def _run(cmd: str | Sequence[str]) -> str:
    """Run a command (a string is split on spaces), return its stdout or raise."""
    args = cmd.split() if isinstance(cmd, str) else list(cmd)
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=_CMD_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EmulationError(f"`{' '.join(args)}` failed: {exc}") from exc
    if out.returncode != 0:
        raise EmulationError(f"`{' '.join(args)}` failed: {out.stderr.strip() or out.returncode}")
    return out.stdout


def _pid_alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, killed but not yet reaped, does not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def _cpu_cgroup_dir() -> Path | str:
    """This process's cgroup v1 cpu directory, or the reason there is none usable."""
    mount: tuple[str, str] | None = None  # (root inside the hierarchy, mount point)
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            pre, _, post = line.partition(" - ")
            fields, tail = pre.split(), post.split()
            if len(tail) >= 3 and tail[0] == "cgroup" and "cpu" in tail[2].split(","):
                mount = (fields[3], fields[4])
    if mount is None:
        return "no cgroup v1 cpu controller is mounted (cgroup v2 cpu.max is not supported)"
    own = "/"
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if "cpu" in controllers.split(","):
                own = path
    rel = os.path.relpath(own, mount[0]) if own.startswith(mount[0]) else "."
    base = Path(mount[1]) / rel
    if not (base / "cpu.cfs_quota_us").exists():
        return f"{base} has no cpu.cfs_quota_us (kernel without CONFIG_CFS_BANDWIDTH?)"
    if not os.access(base, os.W_OK):
        return f"cannot create cgroups under {base} (not root?)"
    return base


@contextlib.contextmanager
def _machine_lock() -> Iterator[None]:
    """Serialise set-up and clean-up between Homes of concurrent processes."""
    with open(_LOCK_PATH, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _release_cgroup(d: Path, timeout: float = 2.0) -> None:
    """Move d's threads back to its parent group, then remove d."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError):
            for tid in (d / "tasks").read_text().split():
                with contextlib.suppress(OSError):  # ESRCH: it exited meanwhile
                    (d.parent / "tasks").write_text(tid)
        try:
            d.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def remove_leftovers(include_live: bool = False) -> list[str]:
    """Remove gx namespaces, host veths and cgroups whose creating process is gone (every
    one not of this process with `include_live`); returns what was removed."""
    me, removed = os.getpid(), []

    def stale(name: str) -> bool:
        m = _OWNED.match(name)
        if m is None or int(m.group(1)) == me:
            return False
        return include_live or not _pid_alive(int(m.group(1)))

    if shutil.which("ip"):
        with contextlib.suppress(EmulationError):
            links = [line.split(":")[1].strip().split("@")[0] for line in _links()]
            namespaces = [line.split()[0] for line in _run("ip netns list").splitlines() if line]
            for kind, names in (("link", links), ("netns", namespaces)):
                for name in filter(stale, names):
                    with contextlib.suppress(EmulationError):
                        _run(f"ip {kind} del {name}")
                        removed.append(name)
    base = _cpu_cgroup_dir()
    if isinstance(base, Path):
        for d in base.iterdir():
            if d.is_dir() and stale(d.name):
                with contextlib.suppress(OSError):
                    _release_cgroup(d)
                    removed.append(str(d))
    if removed:
        log.info("removed emulation leftovers of finished runs: %s", ", ".join(removed))
    return removed


class Home:
    """Devices of a home emulated on this machine; a context manager (see module docstring).

    `tbf_latency_ms` sizes each tbf queue (limit = burst + rate x latency): long enough that
    TCP at full rate is not dropped, bounded so a queue drains in that time. `tbf_burst_bytes`
    defaults to max(64 KiB, 2 ms at the device's rate).
    """

    def __init__(
        self,
        devices: Sequence[DeviceSpec],
        links: LinkMode = "netns",
        cpu: CpuMode = "thread",
        *,
        subnet: str | None = None,
        cfs_period_us: int = 10_000,
        tbf_latency_ms: float = 50.0,
        tbf_burst_bytes: int | None = None,
        strict: bool = False,
    ) -> None:
        if links not in get_args(LinkMode) or cpu not in get_args(CpuMode):
            raise ValueError(
                f"links must be one of {get_args(LinkMode)}, cpu one of "
                f"{get_args(CpuMode)}; got {links!r}, {cpu!r}"
            )
        if not devices:
            raise ValueError("a home needs at least one device")
        if not 1000 <= cfs_period_us <= 1_000_000:
            raise ValueError(f"cfs_period_us must be 1000..1000000 us, got {cfs_period_us}")
        self.devices = list(devices)
        self.requested: dict[str, str] = {"links": links, "cpu": cpu}
        self.links: LinkMode = links
        self.cpu: CpuMode = cpu
        self.fallback: dict[str, str] = {}  # capability -> why the requested mode is not used
        self.strict, self.cfs_period_us = strict, cfs_period_us
        self.tbf_latency_ms, self.tbf_burst_bytes = tbf_latency_ms, tbf_burst_bytes
        self.tag = f"gx{os.getpid()}"
        self._subnet_arg = ipaddress.IPv4Network(subnet) if subnet else None
        self._subnet: ipaddress.IPv4Network | None = None
        self._cgroups: list[Path] = []
        self._throttled: list[list[dict[str, int]]] = [[] for _ in self.devices]
        self._made_netns, self._open = False, False
        caps = self.available()
        if links == "netns" and caps["netns"]:
            self._degrade("links", "loopback", caps["netns"])
        if cpu in ("thread", "process") and caps["cgroup"]:
            self._degrade("cpu", "sleep", caps["cgroup"])

    # ----- capabilities and degradation ------------------------------------------------

    @staticmethod
    def available() -> dict[str, str | None]:
        """{"root", "netns", "cgroup"}: None when usable, else why not."""
        root = None if os.geteuid() == 0 else f"not root (uid {os.geteuid()})"
        missing = [t for t in ("ip", "tc", "nsenter") if shutil.which(t) is None]
        netns = root or (f"missing tools: {', '.join(missing)}" if missing else None)
        base = _cpu_cgroup_dir()
        cpu = root or (base if isinstance(base, str) else None)
        return {"root": root, "netns": netns, "cgroup": cpu}

    def _degrade(self, what: str, to: str, reason: str) -> None:
        asked = self.requested[what]
        if self.strict:
            raise EmulationUnavailable(f"cannot emulate {what}={asked}: {reason}")
        log.warning("emulating %s=%s instead of %s: %s", what, to, asked, reason)
        self.fallback[what] = reason
        if what == "links":
            self.links = "loopback"
        else:
            self.cpu = "sleep"

    # ----- addresses and process placement ----------------------------------------------

    @property
    def coordinator_host(self) -> str:
        """Where the machine's own servers listen so that every device reaches them."""
        return str(self._ip(1)) if self.links == "netns" else "127.0.0.1"

    def device_host(self, i: int) -> str:
        """The address device i's processes bind and are reached on."""
        self._check(i)
        return str(self._ip(10 + i)) if self.links == "netns" else "127.0.0.1"

    def interface(self, i: int) -> str:
        """Device i's network interface as seen from inside it (e.g. for GLOO_SOCKET_IFNAME)."""
        self._check(i)
        return _DEV_IF if self.links == "netns" else "lo"

    def _namespaces(self) -> list[str]:
        return [f"{self.tag}-d{i}" for i in range(len(self.devices))] + [f"{self.tag}-hub"]

    def namespace(self, i: int) -> str | None:
        self._check(i)
        return f"{self.tag}-d{i}" if self.links == "netns" else None

    def prefix(self, i: int) -> list[str]:
        """Command prefix that starts a process on device i (`nsenter --net=...`, not
        `ip netns exec`, which remounts /sys and hides the cgroup tree)."""
        ns = self.namespace(i)
        return [] if ns is None else ["nsenter", f"--net={_netns_dir() / ns}"]

    def _check(self, i: int) -> None:
        if not 0 <= i < len(self.devices):
            raise IndexError(f"device {i} is not in this home of {len(self.devices)}")

    def _ip(self, host: int) -> ipaddress.IPv4Address:
        if self._subnet is None:
            raise RuntimeError("the home's network exists only inside `with Home(...)`")
        return self._subnet.network_address + host

    # ----- set-up and tear-down ---------------------------------------------------------

    def __enter__(self) -> Home:
        if self._open:
            raise RuntimeError("a Home can be entered once")
        self._open = True
        atexit.register(self.close)
        try:
            if self.links == "netns" or self.cpu in ("thread", "process"):
                with _machine_lock():
                    remove_leftovers()
                    self._set_up()
        except BaseException:
            self.close()
            raise
        log.info("emulated home: %s", self.describe())
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _set_up(self) -> None:
        if self.links == "netns":
            try:
                self._set_up_netns()
            except EmulationError as exc:
                self._close_netns()
                self._degrade("links", "loopback", str(exc))
        if self.cpu in ("thread", "process"):
            try:
                self._set_up_cgroups()
            except OSError as exc:
                self._close_cgroups()
                self._degrade("cpu", "sleep", f"cgroup set-up failed: {exc}")
        total = sum(d.speed for d in self.devices)
        if self.cpu in ("thread", "process") and total > 0.75 * (os.cpu_count() or 1):
            log.warning(
                "quotas add up to %.2f of %d cores: the devices will be slower than their speeds",
                total,
                os.cpu_count() or 1,
            )

    def _pick_subnet(self) -> ipaddress.IPv4Network:
        used = []
        for line in _run("ip -o -4 addr show").splitlines():
            tokens = line.split()
            if "inet" in tokens:
                used.append(ipaddress.IPv4Network(tokens[tokens.index("inet") + 1], strict=False))
        for line in _run("ip -4 route show table all").splitlines():
            for token in line.split()[:2]:
                with contextlib.suppress(ValueError):
                    net = ipaddress.IPv4Network(token, strict=False)
                    if net.prefixlen > 0:
                        used.append(net)
                    break
        candidates = (
            [self._subnet_arg]
            if self._subnet_arg
            else [ipaddress.IPv4Network(f"10.77.{k}.0/24") for k in range(256)]
        )
        for net in candidates:
            if net.num_addresses >= 16 + len(self.devices) and not any(
                net.overlaps(u) for u in used
            ):
                return net
        raise EmulationError(
            f"no free subnet for {len(self.devices)} devices among {candidates[0]}...: the "
            "machine's interfaces or routes overlap them (pass subnet=...)"
        )

    def _set_up_netns(self) -> None:
        self._subnet = self._pick_subnet()
        plen, hub, host_if = self._subnet.prefixlen, f"{self.tag}-hub", f"{self.tag}h"
        self._made_netns = True
        _run(f"ip netns add {hub}")
        _run(["nsenter", f"--net={_netns_dir() / hub}", "sh", "-c", _NO_BRIDGE_NETFILTER])
        _run(f"ip -n {hub} link add {_BRIDGE} type bridge")
        _run(f"ip -n {hub} link set {_BRIDGE} up")
        _run(f"ip link add {host_if} type veth peer name gxhost netns {hub}")
        _run(f"ip -n {hub} link set gxhost master {_BRIDGE} up")
        _run(f"ip addr add {self._ip(1)}/{plen} dev {host_if}")
        _run(f"ip link set {host_if} up")
        for i in range(len(self.devices)):
            ns, port, tbf = f"{self.tag}-d{i}", f"{_PORT}{i}", self._tbf(i)
            _run(f"ip netns add {ns}")
            _run(f"ip -n {hub} link add {port} type veth peer name {_DEV_IF} netns {ns}")
            _run(f"ip -n {hub} link set {port} master {_BRIDGE} up")
            _run(f"ip -n {ns} addr add {self._ip(10 + i)}/{plen} dev {_DEV_IF}")
            _run(f"ip -n {ns} link set {_DEV_IF} up")
            _run(f"ip -n {ns} link set lo up")
            shape = (
                f"root tbf rate {tbf['rate_bit']}bit burst {tbf['burst_bytes']} "
                f"limit {tbf['limit_bytes']}"
            )
            _run(f"tc -n {ns} qdisc replace dev {_DEV_IF} {shape}")  # upload
            _run(f"tc -n {hub} qdisc replace dev {port} {shape}")  # download

    def _tbf(self, i: int) -> dict[str, int]:
        rate_bit = round(self.devices[i].bandwidth_mbps * 1e6)
        burst = self.tbf_burst_bytes or max(_MIN_BURST_BYTES, rate_bit // 8 // 500)
        limit = burst + round(rate_bit / 8 * self.tbf_latency_ms / 1e3)
        return {"rate_bit": rate_bit, "burst_bytes": burst, "limit_bytes": limit}

    def _set_up_cgroups(self) -> None:
        base = _cpu_cgroup_dir()
        if isinstance(base, str):
            raise OSError(base)
        for i, dev in enumerate(self.devices):
            d = base / f"{self.tag}-d{i}"
            d.mkdir()
            self._cgroups.append(d)
            (d / "cpu.cfs_period_us").write_text(str(self.cfs_period_us))
            (d / "cpu.cfs_quota_us").write_text(str(self._quota_us(dev)))

    def _quota_us(self, dev: DeviceSpec) -> int:
        return max(1000, round(dev.speed * self.cfs_period_us))  # the kernel's minimum: 1 ms

    def close(self) -> None:
        """Remove every namespace, veth, bridge and cgroup of this Home (idempotent)."""
        atexit.unregister(self.close)
        self._close_cgroups()
        self._close_netns()

    def _close_netns(self) -> None:
        if not self._made_netns:
            return
        self._made_netns = False
        errors = []
        # Deleting a namespace frees its interfaces asynchronously: remove the root end now.
        host_if, present = f"{self.tag}h", _run("ip netns list").split()
        doomed = [f"link del {host_if}"] if any(f" {host_if}@" in x for x in _links()) else []
        doomed += [f"netns del {ns}" for ns in self._namespaces() if ns in present]
        for cmd in doomed:
            try:
                _run(f"ip {cmd}")
            except EmulationError as exc:
                errors.append(str(exc))
        if errors:
            log.warning("emulation clean-up incomplete: %s", "; ".join(errors))

    def _close_cgroups(self) -> None:
        while self._cgroups:
            d = self._cgroups.pop()
            try:
                _release_cgroup(d)
            except OSError as exc:
                log.warning("could not remove cgroup %s: %s", d, exc)

    # ----- CPU speed -------------------------------------------------------------------

    def throttle(self, i: int, pid: int, compute_tid: int) -> None:
        """Cap device i's compute at `speed` cores: its compute thread (cpu="thread") or
        every thread of process `pid` (cpu="process"); nothing for "sleep" and "none"."""
        if self.cpu not in ("thread", "process"):
            return
        if not self._cgroups:
            raise RuntimeError("throttle() works only inside `with Home(...)`")
        if not Path(f"/proc/{pid}/task/{compute_tid}").exists():
            raise EmulationError(f"thread {compute_tid} of process {pid} does not exist")
        d = self._cgroups[i]
        target, value = (
            (d / "tasks", compute_tid) if self.cpu == "thread" else (d / "cgroup.procs", pid)
        )
        try:
            target.write_text(str(value))
        except OSError as exc:
            raise EmulationError(f"could not move {value} into {target}: {exc}") from exc
        self._throttled[i].append({"pid": pid, "tid": compute_tid})

    # ----- report ----------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """What emulation actually runs, for the benchmark JSON ("emulation" key)."""
        netns, quota = self.links == "netns", self.cpu in ("thread", "process")
        return {
            "links": self.links,
            "cpu": self.cpu,
            "requested": dict(self.requested),
            "fallback_reasons": dict(self.fallback),
            "subnet": str(self._subnet) if netns and self._subnet else None,
            "coordinator_host": self.coordinator_host if self._subnet or not netns else None,
            "tbf": {
                "where": "device egress (upload) and bridge-port egress (download)",
                "latency_ms": self.tbf_latency_ms,
                "counts": "layer-2 bytes: TCP goodput is about 95% of the rate at MTU 1500",
            }
            if netns
            else None,
            "cfs_period_us": self.cfs_period_us if quota else None,
            "devices": [
                {
                    "name": d.name,
                    "speed": d.speed,
                    "bandwidth_mbps": d.bandwidth_mbps,
                    "namespace": self.namespace(i),
                    "tbf": self._tbf(i) if netns else None,
                    "cfs_quota_us": self._quota_us(d) if quota else None,
                    "throttled": list(self._throttled[i]),
                }
                for i, d in enumerate(self.devices)
            ],
        }


def _links() -> list[str]:
    return _run("ip -o link show").splitlines()


def _netns_dir() -> Path:
    run = Path("/run/netns")
    return run if run.exists() or not Path("/var/run/netns").exists() else Path("/var/run/netns")
