"""An emulated home on one machine: a shaped link and a CPU quota per device.

    with Home([DeviceSpec("pi", 0.15, 100), DeviceSpec("pc", 0.5, 1000)]) as home:
        cmd = [*home.prefix(i), sys.executable, ...]  # a process "on" device i
        # it binds home.device_host(i) and reaches the machine at home.coordinator_host
        home.throttle(i, pid, compute_tid)             # cap its compute thread at `speed` cores
        report["emulation"] = home.describe()          # what ran; home.label says it in words

links="netns": one network namespace per device on a bridge, tc tbf at the device's rate
both ways (`netns.py`). links="loopback": every address is 127.0.0.1, nothing is shaped.

cpu="thread": a cgroup v1 cpu quota of speed x period on the device's compute thread only;
cpu="process": on its whole process (`cgroups.py`). cpu="sleep": nothing here, the worker
(`galaxy worker --development --speed S`) sleeps before each hand-off to the ring until a
device that slow would have computed what it hands over (`edge_worker/comm/waits.py`): time
stretched without a quota period's steps, but a stand-in, not a CPU cap. cpu="none": no
limit.

When namespaces or cgroups are unavailable (not root, a tool missing, no cgroup v1 cpu
controller, or setting up fails) the Home falls back to links="loopback" and cpu="sleep",
logs a warning and records why in `describe()`, whose `label` says FALLBACK; `strict=True`
raises EmulationUnavailable instead.

Cleanup: every object is named gx<pid>... and removed on exit, also after an exception in the
`with` body and at interpreter exit; entering a Home first removes the leftovers of Homes whose
process is gone (`remove_leftovers`).
"""

from __future__ import annotations

import atexit
import ipaddress
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, get_args

from galaxy_bench import cgroups, netns
from galaxy_bench.ballast import Ballasts, env_prefix, keep_off_ballasts
from galaxy_bench.errors import EmulationError, EmulationUnavailable
from galaxy_bench.host import machine_lock, stale_names

__all__ = [
    "CpuMode",
    "DeviceSpec",
    "EmulationError",
    "EmulationUnavailable",
    "Home",
    "LinkMode",
    "describe_in_words",
    "remove_leftovers",
]

log = logging.getLogger(__name__)

LinkMode = Literal["netns", "loopback"]
CpuMode = Literal["thread", "process", "sleep", "none"]
_LINK_WORDS = {"netns": "netns tbf links", "loopback": "loopback links (not shaped)"}
_CPU_WORDS = {
    "thread": "cgroup thread quotas",
    "process": "cgroup process quotas",
    "sleep": "SLEEP emulation (not a real CPU cap)",
    "none": "no CPU limit",
}


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


def describe_in_words(links: str, cpu: str, fallback: dict[str, str] | None = None) -> str:
    """The emulation for a table title: "netns tbf links, cgroup thread quotas", or e.g.
    "loopback links (not shaped), SLEEP emulation (not a real CPU cap); FALLBACK: cgroup
    quotas unavailable (not root)"."""
    words = f"{_LINK_WORDS.get(links, links)}, {_CPU_WORDS.get(cpu, cpu)}"
    if fallback:
        words += "; FALLBACK: " + ", ".join(
            f"{'namespaces' if what == 'links' else 'cgroup quotas'} unavailable ({why})"
            for what, why in fallback.items()
        )
    return words


def remove_leftovers(include_live: bool = False) -> list[str]:
    """Remove gx namespaces, host veths and cgroups whose creating process is gone (every
    one not of this process with `include_live`); returns what was removed."""
    stale = stale_names(os.getpid(), include_live)
    removed = netns.remove_stale(stale) if shutil.which("ip") else []
    removed += cgroups.remove_stale(stale)
    if removed:
        log.info("removed emulation leftovers of finished runs: %s", ", ".join(removed))
    return removed


class Home:
    """Devices of a home emulated on this machine; a context manager (see module docstring).

    `tbf_latency_ms` and `tbf_burst_bytes` size the links' queues (`netns.Network`),
    `cfs_period_us` the CPU quotas' period, or `cpu_slice_us` their quota per period
    (`cgroups.CpuQuotas`). `ballast`: each device's waits on the ring spend its quota
    (ballast.py; thread quotas only).
    """

    def __init__(
        self,
        devices: Sequence[DeviceSpec],
        links: LinkMode = "netns",
        cpu: CpuMode = "thread",
        *,
        subnet: str | None = None,
        cfs_period_us: int = 10_000,
        cpu_slice_us: int | None = None,
        tbf_latency_ms: float = 50.0,
        tbf_burst_bytes: int | None = None,
        strict: bool = False,
        ballast: bool = False,
    ) -> None:
        if links not in get_args(LinkMode) or cpu not in get_args(CpuMode):
            raise ValueError(
                f"links must be one of {get_args(LinkMode)}, cpu one of "
                f"{get_args(CpuMode)}; got {links!r}, {cpu!r}"
            )
        if not devices:
            raise ValueError("a home needs at least one device")
        self.devices = list(devices)
        self.tag = f"gx{os.getpid()}"
        self._quotas = cgroups.CpuQuotas(
            self.tag, [d.speed for d in self.devices], cfs_period_us, cpu_slice_us
        )
        self._network = netns.Network(
            self.tag,
            [d.bandwidth_mbps for d in self.devices],
            subnet=ipaddress.IPv4Network(subnet) if subnet else None,
            tbf_latency_ms=tbf_latency_ms,
            tbf_burst_bytes=tbf_burst_bytes,
        )
        self.requested: dict[str, str] = {"links": links, "cpu": cpu}
        self.links: LinkMode = links
        self.cpu: CpuMode = cpu
        self.fallback: dict[str, str] = {}  # capability -> why the requested mode is not used
        self.strict = strict
        self._open = False
        caps = self.available()
        if links == "netns" and caps["netns"]:
            self._degrade("links", "loopback", caps["netns"])
        if cpu in ("thread", "process") and caps["cgroup"]:
            self._degrade("cpu", "sleep", caps["cgroup"])
        if ballast and self.cpu != "thread":
            raise EmulationUnavailable(
                f"a ballast needs CPU quotas on the compute thread, and cpu is {self.cpu!r}"
            )
        self.ballasts = Ballasts() if ballast else None

    # ----- capabilities and degradation ------------------------------------------------

    @staticmethod
    def available() -> dict[str, str | None]:
        """{"root", "netns", "cgroup"}: None when usable, else why not."""
        root = None if os.geteuid() == 0 else f"not root (uid {os.geteuid()})"
        missing = [t for t in netns.TOOLS if shutil.which(t) is None]
        net = root or (f"missing tools: {', '.join(missing)}" if missing else None)
        base = cgroups.cpu_cgroup_dir()
        cpu = root or (base if isinstance(base, str) else None)
        return {"root": root, "netns": net, "cgroup": cpu}

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

    @property
    def label(self) -> str:
        """What runs, in words for a table title (`describe_in_words`)."""
        words = describe_in_words(self.links, self.cpu, self.fallback)
        slice_us = self._quotas.slice_us
        if slice_us is not None and self.cpu in ("thread", "process"):
            words += f" ({slice_us / 1000:g} ms slices)"
        if self.ballasts is not None:
            words += ", waits spend the quota (ballast)"
        return words

    # ----- addresses and process placement ----------------------------------------------

    @property
    def coordinator_host(self) -> str:
        """Where the machine's own servers listen so that every device reaches them."""
        return str(self._network.ip(1)) if self.links == "netns" else "127.0.0.1"

    def device_host(self, i: int) -> str:
        """The address device i's processes bind and are reached on."""
        self._check(i)
        return str(self._network.ip(10 + i)) if self.links == "netns" else "127.0.0.1"

    def interface(self, i: int) -> str:
        """Device i's network interface as seen from inside it (e.g. for GLOO_SOCKET_IFNAME)."""
        self._check(i)
        return netns.DEVICE_INTERFACE if self.links == "netns" else "lo"

    def namespace(self, i: int) -> str | None:
        self._check(i)
        return self._network.namespace(i) if self.links == "netns" else None

    def prefix(self, i: int) -> list[str]:
        """Command prefix that starts a process on device i ([] on loopback)."""
        self._check(i)
        prefix = self._network.prefix(i) if self.links == "netns" else []
        return prefix + (env_prefix(self.ballasts.pid(i)) if self.ballasts is not None else [])

    def cgroup(self, i: int) -> Path:
        """Device i's cpu cgroup directory (cpu="thread" or "process", inside the `with`)."""
        self._check(i)
        if not self._quotas.groups:
            raise RuntimeError(f"no cpu cgroups: cpu={self.cpu!r} or not inside `with Home(...)`")
        return self._quotas.groups[i]

    def _check(self, i: int) -> None:
        if not 0 <= i < len(self.devices):
            raise IndexError(f"device {i} is not in this home of {len(self.devices)}")

    # ----- set-up and tear-down ---------------------------------------------------------

    def __enter__(self) -> Home:
        if self._open:
            raise RuntimeError("a Home can be entered once")
        self._open = True
        atexit.register(self.close)
        try:
            if self.links == "netns" or self.cpu in ("thread", "process"):
                with machine_lock():
                    remove_leftovers()
                    self._set_up()
            if self.ballasts is not None:
                self.ballasts.start(len(self.devices))
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
                self._network.set_up()
            except EmulationError as exc:
                self._network.close()
                self._degrade("links", "loopback", str(exc))
        if self.cpu in ("thread", "process"):
            try:
                self._quotas.set_up()
            except OSError as exc:
                self._quotas.close()
                self._degrade("cpu", "sleep", f"cgroup set-up failed: {exc}")
        total = sum(d.speed for d in self.devices)
        if self.cpu in ("thread", "process") and total > 0.75 * (os.cpu_count() or 1):
            log.warning(
                "quotas add up to %.2f of %d cores: the devices will be slower than their speeds",
                total,
                os.cpu_count() or 1,
            )

    def close(self) -> None:
        """Remove every namespace, veth, bridge and cgroup of this Home (idempotent)."""
        atexit.unregister(self.close)
        if self.ballasts is not None:
            self.ballasts.close()
        self._quotas.close()
        self._network.close()

    def set_bandwidth(self, i: int, mbps: float) -> None:
        """Device i's link at `mbps` (Mbit/s, each way) from now on: a link that degrades mid-run.
        Needs links="netns" (raises EmulationError on loopback: nothing to shape)."""
        self._check(i)
        if self.links != "netns":
            raise EmulationError(f"cannot shape {self.devices[i].name}'s link: links are loopback")
        self._network.set_rate(i, mbps)
        self.devices[i] = replace(self.devices[i], bandwidth_mbps=mbps)

    # ----- CPU speed -------------------------------------------------------------------

    def throttle(self, i: int, pid: int, compute_tid: int) -> None:
        """Cap device i's compute at `speed` cores: its compute thread (cpu="thread") or
        every thread of process `pid` (cpu="process"); nothing for "sleep" and "none"."""
        if self.cpu == "thread" or self.cpu == "process":
            self._quotas.throttle(i, pid, compute_tid, self.cpu)
        if self.ballasts is not None:  # beside the compute thread, in its group
            ballast = self.ballasts.pid(i)
            self._quotas.throttle(i, ballast, ballast, "thread")
            keep_off_ballasts(pid, compute_tid)

    # ----- report ----------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """What emulation actually runs, for the benchmark JSON ("emulation" key); `label`
        says it in words (and says FALLBACK when a requested mode was unavailable)."""
        shaped, quota = self.links == "netns", self.cpu in ("thread", "process")
        sliced = self._quotas.slice_us is not None
        subnet = self._network.subnet
        return {
            "label": self.label,
            "links": self.links,
            "cpu": self.cpu,
            "requested": dict(self.requested),
            "fallback_reasons": dict(self.fallback),
            "subnet": str(subnet) if shaped and subnet else None,
            "coordinator_host": self.coordinator_host if subnet or not shaped else None,
            "tbf": {
                "where": "device egress (upload) and bridge-port egress (download)",
                "latency_ms": self._network.tbf_latency_ms,
                "counts": "layer-2 bytes: TCP goodput is about 95% of the rate at MTU 1500",
            }
            if shaped
            else None,
            "cfs_period_us": self._quotas.cfs_period_us if quota and not sliced else None,
            "cpu_slice_us": self._quotas.slice_us if quota else None,
            "ballast": self.ballasts is not None,
            "devices": [
                {
                    "name": d.name,
                    "speed": d.speed,
                    "bandwidth_mbps": d.bandwidth_mbps,
                    "namespace": self.namespace(i),
                    "tbf": self._network.tbf(i) if shaped else None,
                    "cfs_quota_us": self._quotas.quota_us(i) if quota else None,
                    "cfs_period_us": self._quotas.period_us(i) if quota else None,
                    "throttled": list(self._quotas.throttled[i]),
                }
                for i, d in enumerate(self.devices)
            ],
        }
