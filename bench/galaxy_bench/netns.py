"""Shaped links between network namespaces on one bridge (the emulated home's LAN).

Namespace gx<pid>-hub holds the bridge gxbr; device i gets namespace gx<pid>-d<i> whose
interface eth0 (10.77.k.(10+i)/24) is one end of a veth, the other end a bridge port. tc tbf
at the device's rate shapes both directions: on eth0 (upload) and on the bridge port
(download). The machine (coordinator, gateway) joins the bridge through the veth gx<pid>h
with 10.77.k.1, so every address sits on one subnet of one bridge: no forwarding, no routes,
no iptables. The hub namespace turns bridge netfilter (net.bridge.bridge-nf-call-*, a
per-namespace setting) off, so a host firewall never sees bridged frames. k is the first
10.77.k.0/24 that no interface or route of the machine overlaps (or pass `subnet`).
Needs root and the `ip`, `tc` and `nsenter` tools.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from galaxy_bench.errors import EmulationError
from galaxy_bench.host import run

__all__ = ["DEVICE_INTERFACE", "TOOLS", "Network", "netns_dir", "remove_stale"]

log = logging.getLogger(__name__)

TOOLS = ("ip", "tc", "nsenter")
DEVICE_INTERFACE = "eth0"
_BRIDGE, _PORT = "gxbr", "gxp"
_NO_BRIDGE_NETFILTER = (  # per network namespace: frames on our bridge skip the host firewall
    "for k in iptables ip6tables arptables; do f=/proc/sys/net/bridge/bridge-nf-call-$k; "
    '[ ! -e "$f" ] || echo 0 > "$f"; done'
)
_MIN_BURST_BYTES = 64 * 1024  # >= one GSO segment; smaller bursts stall the queue


class Network:
    """The namespaces, veths, bridge and tbf queues of one home (see module docstring).

    `tbf_latency_ms` sizes each tbf queue (limit = burst + rate x latency): long enough that
    TCP at full rate is not dropped, bounded so a queue drains in that time. `tbf_burst_bytes`
    defaults to max(64 KiB, 2 ms at the device's rate).
    """

    def __init__(
        self,
        tag: str,
        rates_mbps: Sequence[float],
        *,
        subnet: ipaddress.IPv4Network | None = None,
        tbf_latency_ms: float = 50.0,
        tbf_burst_bytes: int | None = None,
    ) -> None:
        self.tag, self.rates_mbps = tag, list(rates_mbps)
        self.tbf_latency_ms, self.tbf_burst_bytes = tbf_latency_ms, tbf_burst_bytes
        self._subnet_arg = subnet
        self.subnet: ipaddress.IPv4Network | None = None  # chosen by set_up
        self._made = False

    # ----- names and addresses -----------------------------------------------------------

    def namespace(self, i: int) -> str:
        return f"{self.tag}-d{i}"

    def namespaces(self) -> list[str]:
        return [self.namespace(i) for i in range(len(self.rates_mbps))] + [f"{self.tag}-hub"]

    def prefix(self, i: int) -> list[str]:
        """Command prefix that starts a process on device i (`nsenter --net=...`, not
        `ip netns exec`, which remounts /sys and hides the cgroup tree)."""
        return ["nsenter", f"--net={netns_dir() / self.namespace(i)}"]

    def ip(self, host: int) -> ipaddress.IPv4Address:
        """Address number `host` of the home's subnet (1: the machine, 10 + i: device i)."""
        if self.subnet is None:
            raise RuntimeError("the home's network exists only inside `with Home(...)`")
        return self.subnet.network_address + host

    def tbf(self, i: int) -> dict[str, int]:
        """Device i's token bucket: rate (bit/s), burst and queue limit (bytes)."""
        rate_bit = round(self.rates_mbps[i] * 1e6)
        burst = self.tbf_burst_bytes or max(_MIN_BURST_BYTES, rate_bit // 8 // 500)
        limit = burst + round(rate_bit / 8 * self.tbf_latency_ms / 1e3)
        return {"rate_bit": rate_bit, "burst_bytes": burst, "limit_bytes": limit}

    # ----- set-up and tear-down -----------------------------------------------------------

    def set_up(self) -> None:
        """Create everything; raises EmulationError (call `close` to undo a partial set-up)."""
        self.subnet = self._pick_subnet()
        plen, hub, host_if = self.subnet.prefixlen, f"{self.tag}-hub", f"{self.tag}h"
        self._made = True
        run(f"ip netns add {hub}")
        run(["nsenter", f"--net={netns_dir() / hub}", "sh", "-c", _NO_BRIDGE_NETFILTER])
        run(f"ip -n {hub} link add {_BRIDGE} type bridge")
        run(f"ip -n {hub} link set {_BRIDGE} up")
        run(f"ip link add {host_if} type veth peer name gxhost netns {hub}")
        run(f"ip -n {hub} link set gxhost master {_BRIDGE} up")
        run(f"ip addr add {self.ip(1)}/{plen} dev {host_if}")
        run(f"ip link set {host_if} up")
        dev = DEVICE_INTERFACE
        for i in range(len(self.rates_mbps)):
            ns, port = self.namespace(i), f"{_PORT}{i}"
            run(f"ip netns add {ns}")
            run(f"ip -n {hub} link add {port} type veth peer name {dev} netns {ns}")
            run(f"ip -n {hub} link set {port} master {_BRIDGE} up")
            run(f"ip -n {ns} addr add {self.ip(10 + i)}/{plen} dev {dev}")
            run(f"ip -n {ns} link set {dev} up")
            run(f"ip -n {ns} link set lo up")
            self._shape(i)

    def set_rate(self, i: int, mbps: float) -> None:
        """Shape device i's link at `mbps` from now on, both ways (a link that degrades or
        recovers while the home runs); the connections on it stay up."""
        if not self._made:
            raise RuntimeError("the home's network exists only inside `with Home(...)`")
        self.rates_mbps[i] = mbps
        self._shape(i)

    def _shape(self, i: int) -> None:
        tbf, ns, hub = self.tbf(i), self.namespace(i), f"{self.tag}-hub"
        shape = (
            f"root tbf rate {tbf['rate_bit']}bit burst {tbf['burst_bytes']} "
            f"limit {tbf['limit_bytes']}"
        )
        run(f"tc -n {ns} qdisc replace dev {DEVICE_INTERFACE} {shape}")  # upload
        run(f"tc -n {hub} qdisc replace dev {_PORT}{i} {shape}")  # download

    def _pick_subnet(self) -> ipaddress.IPv4Network:
        used = []
        for line in run("ip -o -4 addr show").splitlines():
            tokens = line.split()
            if "inet" in tokens:
                used.append(ipaddress.IPv4Network(tokens[tokens.index("inet") + 1], strict=False))
        for line in run("ip -4 route show table all").splitlines():
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
            if net.num_addresses >= 16 + len(self.rates_mbps) and not any(
                net.overlaps(u) for u in used
            ):
                return net
        raise EmulationError(
            f"no free subnet for {len(self.rates_mbps)} devices among {candidates[0]}...: the "
            "machine's interfaces or routes overlap them (pass subnet=...)"
        )

    def close(self) -> None:
        """Remove the namespaces and the host veth (idempotent; logs what it could not)."""
        if not self._made:
            return
        self._made = False
        errors = []
        # Deleting a namespace frees its interfaces asynchronously: remove the root end now.
        host_if, present = f"{self.tag}h", run("ip netns list").split()
        doomed = [f"link del {host_if}"] if any(f" {host_if}@" in x for x in _links()) else []
        doomed += [f"netns del {ns}" for ns in self.namespaces() if ns in present]
        for cmd in doomed:
            try:
                run(f"ip {cmd}")
            except EmulationError as exc:
                errors.append(str(exc))
        if errors:
            log.warning("emulation clean-up incomplete: %s", "; ".join(errors))


def remove_stale(stale: Callable[[str], bool]) -> list[str]:
    """Delete the host links and namespaces whose names `stale` accepts; returns them."""
    removed: list[str] = []
    with contextlib.suppress(EmulationError):
        links = [line.split(":")[1].strip().split("@")[0] for line in _links()]
        namespaces = [line.split()[0] for line in run("ip netns list").splitlines() if line]
        for kind, names in (("link", links), ("netns", namespaces)):
            for name in filter(stale, names):
                with contextlib.suppress(EmulationError):
                    run(f"ip {kind} del {name}")
                    removed.append(name)
    return removed


def _links() -> list[str]:
    return run("ip -o link show").splitlines()


def netns_dir() -> Path:
    """Where `ip netns` keeps its namespace files."""
    run_dir = Path("/run/netns")
    if run_dir.exists() or not Path("/var/run/netns").exists():
        return run_dir
    return Path("/var/run/netns")
