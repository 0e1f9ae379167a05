"""The edge-worker process: connect to a coordinator, take a shard, join the ring, execute.

    worker = Worker(name, data_dir)           # picks its data-plane port, starts its compute thread
    asyncio.run(worker.serve(coordinator_url))

The control link is a websocket; the data plane is the TCP ring (`edge_worker.comm.tcp`). All
engine work runs on one dedicated compute thread (torch with `threads` intra-op threads).

`development=True` (`galaxy worker --development`, for `galaxy verify` and `galaxy bench` only)
allows `speed` below 1 (an emulated slow device: its compute stretched by sleeping before
each hand-off to the ring, comm/waits.py)
and sends the process id and the compute thread's native id in the Hello, so a benchmark can
cap exactly that thread's CPU. A product worker never sets it. A malformed
message is answered with an `Error` and the worker carries on; a lost ring peer is reported as
`worker_lost` and the ring is torn down until the next assignment.

The worker reads on while it runs (protocol version 4; the message loop is `link.py`), so the
gateway can deploy a plan beside the requests still running on the old one, and `Release` it
when done. Rings form one at a time, beside the reader, and a Release calls a forming ring off
(`rings.py`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import sys
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import torch
import websockets

from edge_worker.comm import waits
from edge_worker.comm.tcp import TcpRingCommunicator
from edge_worker.engine.model import RankModel
from edge_worker.engine.weights import ModelWeights, tensor_bytes
from edge_worker.errors import CommError, GalaxyError
from edge_worker.profile.cache import ProfileCache, machine_fingerprint
from edge_worker.profile.compute import (
    available_memory_mb,
    layer_costs,
    reset_peak_rss,
    rss_mb,
    total_memory_mb,
)
from edge_worker.profile.cpu import process_cores
from edge_worker.profile.links import measure_ring
from edge_worker.profile.ringcpu import ring_cpu_ms_per_mb
from edge_worker.service import checks
from edge_worker.service import protocol as P
from edge_worker.service.checks import BadMessage
from edge_worker.service.credentials import Credentials, PendingCredentials
from edge_worker.service.execute import Deployment, LoadedShard, answer, execute
from edge_worker.service.link import ControlLink, Handler
from edge_worker.service.rings import Rings
from edge_worker.service.store import ShardStore

log = logging.getLogger(__name__)
MAX_MESSAGE_BYTES = 1 << 30  # a control message: a shard's largest tensor fits, no more


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class Worker:
    def __init__(
        self,
        name: str,
        data_dir: Path,
        data_host: str = "127.0.0.1",
        data_port: int = 0,
        threads: int = 1,
        ring_timeout: float = 60.0,
        speed: float = 1.0,
        max_deployments: int = 12,
        shard_cache: int = 16,
        shard_cache_mb: float = 4096.0,
        reserve_mb: float = 512.0,
        development: bool = False,
    ) -> None:
        if not 0 < speed <= 1:
            raise ValueError(f"speed must be in (0, 1], got {speed}")
        if speed < 1 and not development:
            raise ValueError(
                f"speed {speed} emulates a slower device by sleeping, a development mode for "
                "galaxy bench: pass --development to allow it, or leave the speed at 1"
            )
        self.name, self.speed = name, speed
        self.development = development
        self.reserve_mb = reserve_mb  # memory the planner must leave to the device itself
        # The ring's socket threads and the compute thread share the GIL. With Python's default
        # 5 ms switch interval, every torch op the compute thread finishes could wait up to 5 ms
        # for a socket thread to let go: overlapped layers measured 25% more compute time.
        # At 0.5 ms that dropped to about 5% (the cost of row-tiled GEMMs).
        sys.setswitchinterval(0.0005)
        self.data_port = data_port or free_port("0.0.0.0" if data_host == "auto" else data_host)
        self.threads = threads
        self.rings = Rings(data_host, self.data_port, ring_timeout)  # its rings listen there
        # Shards kept on disk: more than the plans in memory (`max_deployments`), so a plan
        # deployed again (a standby one back in use, a replan) finds its shard cached; and no
        # more than `shard_cache_mb` of them.
        self.store = ShardStore(data_dir / "shards", keep=shard_cache, max_mb=shard_cache_mb)
        self.compute = ThreadPoolExecutor(1, thread_name_prefix="compute")
        self.ring_cpu: float | None = None  # ms of CPU per MB the ring moves (ringcpu.py)
        self.compute_tid = self.compute.submit(self._init_compute_thread).result()
        if speed < 1.0:  # development only (refused above otherwise): comm/waits.py
            waits.stretch_compute(speed, self.compute_tid)
        # Measured layer costs by request, kept on disk for this machine (profile/cache.py):
        # the fingerprint is taken on the compute thread, whose CPU quota is the one measured.
        fingerprint = self.compute.submit(machine_fingerprint, threads).result()
        self.profiles = ProfileCache(data_dir / "profiles.json", fingerprint)
        # Plans this worker is part of, most recently used last: one ring and shard each.
        self.deployments: OrderedDict[str, Deployment] = OrderedDict()
        self.loaded: dict[str, LoadedShard] = {}  # shards in place, rings not joined yet
        # Weights some plan holds, by content hash: gone with the last plan that holds them.
        self.live: weakref.WeakValueDictionary[str, ModelWeights] = weakref.WeakValueDictionary()
        # The gateway frees plans itself (Release) and keeps standby plans deployed beside the
        # one in use, so this bound is only a safety net against a gateway that forgets: the
        # least recently used plan beyond it is dropped (and its ring closed) on a new Assign.
        self.max_deployments = max_deployments
        self.credentials: Credentials | None = None
        self._renewal: PendingCredentials | None = None  # a new key, until its certificate comes
        self._renewed: Credentials | None = None
        self.on_link: Callable[[str | None], None] = lambda url: None  # link up (url) / down

    @property
    def data_host(self) -> str:
        """Where this worker's rings listen ("auto" until `run.py` finds the route)."""
        return self.rings.host

    @data_host.setter
    def data_host(self, host: str) -> None:
        self.rings.host = host

    def _init_compute_thread(self) -> int:
        torch.set_num_threads(self.threads)
        return threading.get_native_id()

    async def serve(self, url: str, credentials: Credentials | None = None) -> bool:
        """Serve one coordinator until it says Shutdown (returns True) or the link closes
        (False). With `credentials`, every ring connection uses mutual TLS, and so does the
        link to a wss:// gateway (a ws:// development coordinator gets a plain link)."""
        if credentials is not None and self._renewed is not None:
            credentials = self._renewed  # renewed on an earlier link: the caller's are older
        self.credentials = credentials
        gateway = url.startswith("wss://")
        ssl_ctx = credentials.client_context() if credentials and gateway else None
        async with websockets.connect(
            url,
            max_size=MAX_MESSAGE_BYTES,
            compression=None,
            ping_interval=5,
            ping_timeout=20,
            ssl=ssl_ctx,
        ) as ws:
            handlers: dict[type[P.Message], Handler] = {
                P.Assign: self._assign,
                P.Connect: self._connect,
                P.Profile: self._profile,
                P.Probe: self._probe,
                P.Release: self._release,
                P.Renewed: self._take_renewal,
            }
            # Forming a ring waits for its peers: beside the reader, so one that never comes
            # holds up no other message (rings.py).
            link = ControlLink(ws, self.name, handlers, self._run, {P.Connect, P.Probe})
            self.rings.new_link()
            await link.send(self.hello().model_dump_json())
            log.info("%s connected to %s", self.name, url)
            if gateway and credentials is not None and credentials.needs_renewal():
                self._renewal, csr = credentials.renewal()
                await link.send(P.Renew(csr=csr.decode()).model_dump_json())
                log.info("%s: certificate nears its end: asked for a new one", self.name)
            self.on_link(url)
            try:
                return await link.serve()
            finally:
                self.on_link(None)
                self.rings.call_off_all()
                for plan_id in list(self.deployments):
                    self._drop(plan_id)

    def hello(self) -> P.Hello:
        """What this worker announces on connecting; process ids only in development mode."""
        dev = P.DevInfo(pid=os.getpid(), compute_tid=self.compute_tid) if self.development else None
        return P.Hello(
            name=self.name,
            data_host=self.data_host,
            data_port=self.data_port,
            dev=dev,
            memory_mb=available_memory_mb(),
            total_memory_mb=total_memory_mb(),
            reserve_mb=self.reserve_mb,
            threads=self.threads,
            cached_shards=self.store.hashes(),
        )

    async def _profile(self, link: ControlLink, msg: P.Profile) -> None:
        key = msg.model_dump_json(exclude={"fresh", "seconds"})
        costs = None if msg.fresh else self.profiles.get(key)
        cached = costs is not None
        if costs is None:
            cfg = checks.profile_config(msg, available_memory_mb())
            loop = asyncio.get_running_loop()
            work = partial(
                layer_costs,
                cfg,
                msg.seq,
                msg.rows,
                msg.heads,
                msg.cols,
                getattr(torch, msg.dtype),
                msg.seconds,
            )
            costs = await loop.run_in_executor(self.compute, work)
            self.profiles.put(key, costs)
        if self.ring_cpu is None:  # once per process: the machine's, not the model's
            loop = asyncio.get_running_loop()
            self.ring_cpu = await loop.run_in_executor(self.compute, ring_cpu_ms_per_mb)
        c, k = costs, self.speed  # an emulated slow device reports its slowness
        await link.send(
            P.ProfileResult(
                proj=[(m, n, g * k) for m, n, g in c.proj],
                mlp=[(m, n, g * k) for m, n, g in c.mlp],
                attention=[(e, g * k) for e, g in c.attention],
                connective_ns=c.connective_ns / k,
                decode=[(p, ms / k) for p, ms in c.decode],
                rss_mb=rss_mb(),
                cached=cached,
                cpu_cores=process_cores(),
                compute_threads=torch.get_num_threads(),
                ring_cpu_ms_per_mb=self.ring_cpu / k,
            ).model_dump_json(),
        )

    async def _take_renewal(self, link: ControlLink, msg: P.Renewed) -> None:
        """The gateway's new certificate for the key of our Renew: stored; the next
        connections (control link and ring) present it."""
        if self._renewal is None or self.credentials is None:
            raise BadMessage("bad_message", "a renewed certificate this worker did not ask for")
        old = self.credentials
        try:
            creds = self._renewal.save(msg.cert.encode(), old.ca_pem, old.gateway)
        except ValueError as exc:
            raise BadMessage(
                "bad_message", f"the renewed certificate does not fit: {exc}"
            ) from None
        self.credentials = self._renewed = creds
        self._renewal = None
        log.info("%s: certificate renewed (serial %x)", self.name, creds.serial)

    def _ring_tls(self, plain: bool) -> tuple[ssl.SSLContext, ssl.SSLContext] | None:
        """A ring's mutual TLS when this worker has credentials, unless `plain`: development
        only, the bench's baseline."""
        if plain and not self.development:
            raise BadMessage("bad_message", "a ring without TLS is a development mode")
        return self.credentials.ring_contexts() if self.credentials and not plain else None

    async def _probe(self, link: ControlLink, msg: P.Probe) -> None:
        comm: TcpRingCommunicator | None = None
        try:
            tls = self._ring_tls(plain=False)
            comm = await self.rings.form(msg.rank, msg.peers, msg.token, msg.nbytes + 4096, tls)
            if comm is None:  # called off: the control link closed meanwhile
                return
            hop_ms, mbps = await asyncio.get_running_loop().run_in_executor(
                self.compute, measure_ring, comm, msg.nbytes
            )
        except CommError as exc:
            await link.error("worker_lost", f"link probe failed: {exc}")
            return
        finally:
            if comm is not None:
                comm.close()
        await link.send(
            P.ProbeResult(
                probe_id=msg.probe_id, latency_ms=hop_ms, mbps_from_prev=mbps
            ).model_dump_json(),
        )

    async def _assign(self, link: ControlLink, msg: P.Assign) -> None:
        try:
            cfg, plan = checks.assignment(msg)
        except BadMessage:
            following = msg.shard_tensors + msg.full_tensors
            for _ in range(following if following <= 2 * checks.MAX_TENSORS else 0):
                await link.ws.recv()  # the frames that follow the refused message
            raise
        self._drop(msg.plan_id)
        while len(self.deployments) >= self.max_deployments:
            self._drop(next(iter(self.deployments)))
        weights = await self._weights(link, msg.shard_hash, msg.shard_meta, msg.shard_tensors)
        full = None
        if msg.full_hash is not None and msg.full_meta is not None:
            full = await self._weights(link, msg.full_hash, msg.full_meta, msg.full_tensors)
        self.loaded[msg.plan_id] = LoadedShard(msg, cfg, plan, weights, full)
        while len(self.loaded) > self.max_deployments:
            self.loaded.pop(next(iter(self.loaded)))
        mb = round(tensor_bytes(weights) / 2**20, 2)
        loaded = P.Loaded(plan_id=msg.plan_id, shard_mb=mb, cached_shards=self.store.hashes())
        await link.send(loaded.model_dump_json())

    async def _weights(
        self, link: ControlLink, digest: str, meta: dict[str, Any], count: int
    ) -> ModelWeights:
        """A shard (or whole model) by content hash: the same tensors as a plan already holding
        it (the engine only reads weights; a standby plan and the plan in use often share the
        whole model of their decoding rank), else received or loaded from the store."""
        if count == 0 and (live := self.live.get(digest)) is not None:
            return live
        weights = await checks.receive_weights(
            link.shard_frame, self.store, self.name, digest, meta, count
        )
        self.live[digest] = weights
        return weights

    async def _connect(self, link: ControlLink, msg: P.Connect) -> None:
        """Join the ring of a loaded plan (every rank has its shard by now), beside the reader
        (rings.py): a Release meanwhile calls it off, and then nothing is answered."""
        shard = self.loaded.get(msg.plan_id)
        if shard is None:
            await link.error("plan", f"no loaded plan {msg.plan_id} here", plan_id=msg.plan_id)
            return
        a = shard.assign
        bound, tls = checks.ring_bound(shard.cfg), self._ring_tls(a.plain_ring)
        try:
            comm = await self.rings.form(
                a.rank, a.peers, a.token, bound, tls, a.plan_id, lambda: a.plan_id in self.loaded
            )
        except CommError as exc:
            self.loaded.pop(a.plan_id, None)
            await link.error("worker_lost", f"ring did not form: {exc}", plan_id=a.plan_id)
            return
        if comm is None or self.loaded.pop(a.plan_id, None) is None:  # released meanwhile
            if comm is not None:
                comm.close()
            return
        model = RankModel(shard.cfg, shard.weights, shard.plan, comm, full=shard.full)
        if self.speed < 1.0:
            model.on_layer = waits.handing_off
        self.deployments[a.plan_id] = Deployment(comm, model)
        reset_peak_rss()
        mb = tensor_bytes(shard.weights) / 2**20
        log.info("%s: rank %d of %d, shard %.1f MB", self.name, a.rank, len(a.peers), mb)
        await link.send(P.Ready(plan_id=a.plan_id, shard_mb=round(mb, 2)).model_dump_json())

    async def _run(self, link: ControlLink, msg: P.Run) -> None:
        dep = self.deployments.get(msg.plan_id)
        if dep is None:
            await link.error("plan", f"no plan {msg.plan_id} on this worker", msg.run_id)
            return
        checks.run_inputs(dep.model.cfg, msg)
        self.deployments.move_to_end(msg.plan_id)
        loop = asyncio.get_running_loop()
        try:
            out, trace = await loop.run_in_executor(self.compute, execute, dep, msg)
        except CommError as exc:
            self._drop(msg.plan_id)
            await link.error("worker_lost", str(exc), msg.run_id)
            return
        except (GalaxyError, ValueError, IndexError, RuntimeError) as exc:
            await link.error("internal", f"{type(exc).__name__}: {exc}", msg.run_id)
            return
        result, frames = answer(dep, msg, out, trace)
        await link.send(result.model_dump_json(), *frames)

    async def _release(self, link: ControlLink, msg: P.Release) -> None:
        """The gateway is done with a plan: close its ring and free its shard, whether it was
        deployed or only loaded. A run still queued for it answers an Error "plan"; one mid-way
        on its ring, "worker_lost". A plan already gone (evicted, its ring lost) is no error."""
        known = msg.plan_id in self.deployments or msg.plan_id in self.loaded
        self.loaded.pop(msg.plan_id, None)
        self.rings.call_off(msg.plan_id)
        self._drop(msg.plan_id)
        if known:
            log.info("%s: plan %s released", self.name, msg.plan_id)
        else:
            log.debug("%s: release of plan %s, not here (already gone)", self.name, msg.plan_id)

    def _drop(self, plan_id: str) -> None:
        dep = self.deployments.pop(plan_id, None)
        if dep is not None:
            dep.comm.close()
