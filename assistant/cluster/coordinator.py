"""The coordinator: accepts worker control links, ships shards, runs requests across them.

`galaxy verify --transport tcp` and `galaxy bench` start one; the gateway takes this role later.
Each worker connects over a websocket (`compression=None`: deflate makes tensor frames 25x
slower), says `Hello`, and is then driven with `Assign` / `Run` messages (see
`edge_worker.service.protocol`). All coordinator state lives on one asyncio loop; `RemoteCluster`
is the blocking facade the engine's generation loop and the CLI use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from ssl import SSLContext
from typing import Literal, TypeVar

import websockets
from torch import Tensor
from websockets.asyncio.server import Server, ServerConnection

from assistant.cluster.session import RankResult, WorkerSession
from assistant.cluster.shards import ShardCache
from assistant.cluster.shipping import assign
from edge_worker.engine.weights import ModelWeights
from edge_worker.errors import CommTimeout, GalaxyError
from edge_worker.service import protocol as P
from edge_worker.spec.config import ModelConfig
from edge_worker.spec.plan import ParallelPlan, make_plan

M = TypeVar("M", P.Loaded, P.Ready)
T = TypeVar("T")
log = logging.getLogger(__name__)
# The largest control message either side accepts: a whole tensor frame (a shard's largest
# tensor, a result's hidden states or logits) fits; anything larger is refused unread.
MAX_MESSAGE_BYTES = 1 << 30
PONG_S = 5.0  # a worker that answers no ping for this long after a failure is frozen
Authorize = Callable[[ServerConnection, P.Hello | None], str | None]
Renew = Callable[[str, str], str]  # (device name, CSR PEM) -> certificate PEM
OnChange = Callable[[str, bool], None]


class Coordinator:
    """`ssl` (a server context requiring client certificates) makes the link wss://;
    `authorize(ws, hello)` returns a refusal reason or None; `on_change(name, online)` hears
    of every worker that joins or leaves."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        timeout: float = 120.0,
        *,
        ssl: SSLContext | None = None,
        authorize: Authorize | None = None,
        on_change: OnChange | None = None,
        renew: Renew | None = None,
    ) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.ssl, self.authorize, self.on_change = ssl, authorize, on_change
        self.renew = renew
        self.sessions: dict[str, WorkerSession] = {}
        self.arrived = asyncio.Event()
        self.server: Server | None = None
        self.deployments: dict[str, list[WorkerSession]] = {}  # plan_id -> ranks in order
        self._run_id = 0
        self.shards = ShardCache()
        # Shards on their way: worker -> (bytes sent, bytes to send); shown by GET /v1/plan.
        self.transfers: dict[str, tuple[int, int]] = {}
        self.closing: set[asyncio.Task[None]] = set()  # links being closed in the background
        # One control conversation at a time (deploy, profile, probe): their replies share
        # each worker's control inbox, and rings form one at a time.
        self.control = asyncio.Lock()
        # Taken (after `control`, never before: a deploy holds `control` for seconds) around
        # measurements, which must not share the workers with requests: the gateway gives the
        # ring's step lock (gate.py).
        self.quiet = asyncio.Lock()

    @property
    def url(self) -> str:
        return f"{'wss' if self.ssl else 'ws'}://{self.host}:{self.port}/worker"

    async def start(self) -> None:
        self.server = await websockets.serve(
            self._handle,
            self.host,
            self.port,
            max_size=MAX_MESSAGE_BYTES,
            compression=None,
            ping_interval=5,  # heartbeats: a silent worker is dropped within ~15 s
            ping_timeout=10,
            ssl=self.ssl,
        )
        self.port = self.server.sockets[0].getsockname()[1]
        log.info("coordinator listening on %s", self.url)

    async def stop(self) -> None:
        for s in list(self.sessions.values()):
            if s.alive:
                with contextlib.suppress(GalaxyError):
                    await s.send(P.Shutdown())
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _handle(self, ws: ServerConnection) -> None:
        # A revoked or unknown certificate is refused before a byte of the link is read.
        refusal = self.authorize(ws, None) if self.authorize else None
        if refusal is not None:
            log.warning("refused a worker connection: %s", refusal)
            await ws.close(1008, refusal[:120])
            return
        try:
            hello = P.parse(await asyncio.wait_for(ws.recv(), 30))
        except Exception as exc:
            await ws.close(1008, f"expected a hello message: {exc}"[:120])
            return
        if not isinstance(hello, P.Hello):
            await ws.close(1008, "expected a hello message")
            return
        if hello.version != P.VERSION:
            await ws.close(
                1008,
                f"protocol version {hello.version}; this gateway speaks {P.VERSION}: update "
                "the older side"[:120],
            )
            return
        refusal = self.authorize(ws, hello) if self.authorize else None
        if refusal is not None:
            log.warning("refused worker %r: %s", hello.name, refusal)
            await ws.close(1008, refusal[:120])
            return
        old = self.sessions.get(hello.name)
        if old is not None and old.alive:
            await old.ws.close(1008, "replaced by a new connection from the same device")
        session = WorkerSession(hello, ws)
        self.sessions[hello.name] = session
        self.arrived.set()
        if self.on_change:
            self.on_change(hello.name, True)
        log.info("worker %s connected (data %s:%d)", hello.name, hello.data_host, hello.data_port)
        try:
            async for frame in ws:
                if isinstance(frame, bytes):
                    session.deliver(frame)
                    continue
                try:
                    msg = P.parse(frame)
                except ValueError as exc:
                    log.warning("worker %s sent a malformed message: %s", hello.name, exc)
                    continue
                if isinstance(msg, P.Renew):
                    await self._renew(session, msg)
                else:
                    session.deliver(msg)
        except websockets.ConnectionClosed:
            pass
        finally:
            session.alive = False
            session.link_closed()
            log.info("worker %s disconnected", hello.name)
            if self.on_change and self.sessions.get(hello.name) is session:
                self.on_change(hello.name, False)

    async def _renew(self, session: WorkerSession, msg: P.Renew) -> None:
        """A connected worker's certificate nears its end: issue the new one on this link
        (authenticated by the current certificate)."""
        if self.renew is None:
            await session.send(P.Error(code="bad_message", text="this coordinator does not renew"))
            return
        try:
            cert = await asyncio.to_thread(self.renew, session.name, msg.csr)
        except ValueError as exc:
            await session.send(P.Error(code="bad_message", text=f"cannot renew: {exc}"[:500]))
            return
        await session.send(P.Renewed(cert=cert))

    async def disconnect(self, name: str, reason: str) -> None:
        """Close a worker's control link (revocation, or a worker found lost)."""
        s = self.sessions.get(name)
        if s is not None and s.alive:
            s.alive = False
            await s.ws.close(1008, reason[:120])

    async def unresponsive(self, names: list[str], timeout: float = PONG_S) -> list[str]:
        """Those of `names` that answer no ping within `timeout` seconds (frozen: SIGSTOP, a
        hung machine, whose sockets stay open); their links are cut."""
        sessions = [self.sessions[n] for n in names]
        answered = await asyncio.gather(*(s.responsive(timeout) for s in sessions))
        frozen = [s for s, ok in zip(sessions, answered, strict=True) if not ok]
        for s in frozen:
            log.warning("worker %s answers no ping: cutting it off", s.name)
            s.cut()
        return [s.name for s in frozen]

    async def wait_for_workers(self, n: int, timeout: float = 60.0) -> list[WorkerSession]:
        deadline = time.monotonic() + timeout
        while True:
            alive = [s for s in self.sessions.values() if s.alive]
            if len(alive) >= n:
                return alive[:n]
            left = deadline - time.monotonic()
            if left <= 0:
                raise CommTimeout(f"{len(alive)} of {n} workers connected within {timeout:.0f} s")
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), left)

    async def deploy(
        self,
        cfg: ModelConfig,
        weights: ModelWeights,
        plan: ParallelPlan,
        sessions: list[WorkerSession],
        plain_ring: bool = False,
    ) -> tuple[str, list[P.Ready]]:
        """Send every rank its plan and shard (unless cached); once every rank has loaded its
        shard, tell them to form the ring, and wait until it is up. Returns the plan id to run
        requests on. `plain_ring`: development workers only (the bench's baseline without
        TLS)."""
        if len(sessions) != plan.world_size:
            raise GalaxyError(f"plan needs {plan.world_size} workers, {len(sessions)} given")
        token, plan_id = secrets.token_hex(16), secrets.token_hex(6)
        peers = [
            P.Peer(name=s.name, host=s.hello.data_host, port=s.hello.data_port) for s in sessions
        ]
        async with self.control:
            try:
                # Ship every rank's shard at once: each goes over that device's own link.
                await settled(
                    assign(self, s, rank, cfg, weights, plan, plan_id, peers, token, plain_ring)
                    for rank, s in enumerate(sessions)
                )
                # Only then the rings: every rank has its shard, so no one waits out its ring
                # deadline for a peer whose shard is still on the way.
                loaded = await all_or_none(self._expect(s, P.Loaded, plan_id) for s in sessions)
                for s, msg in zip(sessions, loaded, strict=True):
                    s.cached = set(msg.cached_shards)  # (what it evicted is sent again)
                for s in sessions:
                    await s.send(P.Connect(plan_id=plan_id))
                readies = await all_or_none(self._expect(s, P.Ready, plan_id) for s in sessions)
            except BaseException:
                await self._release(sessions, plan_id)  # what did load is freed
                raise
        self.deployments[plan_id] = sessions
        return plan_id, list(readies)

    async def stage(self, cfg: ModelConfig, weights: ModelWeights, s: WorkerSession) -> bool:
        """Put the whole model in `s`'s shard store (on its disk, in no plan), unless it is
        there: a plan with `s` alone then never waits for a transfer (a one-device plan's
        shard is the whole model, hash and all). Returns whether it shipped."""
        _, digest = await self.shards.digest(cfg, weights, None, 0)
        if digest in s.cached:
            return False
        plan = make_plan(cfg, "local", [1.0])
        token, plan_id = secrets.token_hex(16), secrets.token_hex(6)
        me = [P.Peer(name=s.name, host=s.hello.data_host, port=s.hello.data_port)]
        async with self.control:
            try:
                await assign(self, s, 0, cfg, weights, plan, plan_id, me, token)
                s.cached = set((await self._expect(s, P.Loaded, plan_id)).cached_shards)
            finally:
                await self._release([s], plan_id)
        return True

    async def release(self, plan_id: str) -> None:
        """The plan is no longer used: its workers close its ring and free its shards."""
        sessions = self.deployments.pop(plan_id, None)
        if sessions:
            await self._release(sessions, plan_id)

    @staticmethod
    async def _release(sessions: list[WorkerSession], plan_id: str) -> None:
        for s in sessions:
            if s.alive:
                with contextlib.suppress(GalaxyError):
                    await s.send(P.Release(plan_id=plan_id))

    async def _expect(self, s: WorkerSession, kind: type[M], plan_id: str) -> M:
        """`s`'s next `kind` message (Loaded, Ready) for `plan_id`; an Error raises."""
        while True:  # skip what is left of earlier runs
            item = await s.next(self.timeout, plan_id=plan_id)
            if isinstance(item, kind) and getattr(item, "plan_id", None) == plan_id:
                return item

    async def profile(self, s: WorkerSession, request: P.Profile) -> P.ProfileResult:
        """Measure a worker's layer costs (GEMMs, attention, connective block)."""
        async with self.control, self.quiet:
            await s.send(request)
            while True:
                item = await s.next(self.timeout)
                if isinstance(item, P.ProfileResult):
                    return item

    async def probe_links(
        self, sessions: list[WorkerSession], nbytes: int = 4 << 20
    ) -> dict[str, tuple[float, float]]:
        """Measure the data plane with a short-lived ring of `sessions` (TLS as in real plans).

        Returns, per device, (estimated link Mbit/s, per-hop latency ms). The ring measures the
        link i -> i+1, whose rate is the slower of the two devices' links; a device's own link is
        taken as the faster of its two ring links (exact with 3 or more devices on a switch).
        """
        if len(sessions) < 2:
            return {}
        token, probe_id = secrets.token_hex(16), secrets.token_hex(6)
        peers = [
            P.Peer(name=s.name, host=s.hello.data_host, port=s.hello.data_port) for s in sessions
        ]

        async def result(s: WorkerSession) -> P.ProbeResult:
            while True:
                item = await s.next(self.timeout)
                if isinstance(item, P.ProbeResult) and item.probe_id == probe_id:
                    return item

        async with self.control, self.quiet:
            for rank, s in enumerate(sessions):
                await s.send(
                    P.Probe(probe_id=probe_id, rank=rank, peers=peers, token=token, nbytes=nbytes)
                )
            got = await all_or_none(result(s) for s in sessions)
        n = len(sessions)
        return {
            s.name: (max(got[i].mbps_from_prev, got[(i + 1) % n].mbps_from_prev), got[i].latency_ms)
            for i, s in enumerate(sessions)
        }

    async def run(
        self,
        plan_id: str,
        op: Literal["prefill", "decode"],
        input_ids: Tensor,
        want: Literal["hidden", "logits", "last_logits"] = "hidden",
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        session: str = "",
    ) -> list[RankResult]:
        """Run one prefill or decode on every rank of the deployed plan; `session` names the
        generation whose KV cache the ranks use."""
        ranks = self.deployments.get(plan_id)
        if ranks is None:
            raise GalaxyError(f"no deployed plan {plan_id}")
        self._run_id += 1
        msg = P.Run(
            run_id=self._run_id,
            plan_id=plan_id,
            op=op,
            want=want,
            input_ids=input_ids.tolist(),
            attention_mask=None if attention_mask is None else attention_mask.tolist(),
            token_type_ids=None if token_type_ids is None else token_type_ids.tolist(),
            session=session,
        )
        for s in ranks:
            s.running = msg.run_id
            await s.send(msg)
        # One rank failing fails the run (`running` says who still owes an answer).
        return await all_or_none(s.result(msg.run_id, self.timeout) for s in ranks)


# A control conversation holds `Coordinator.control` and ends with nothing of it left running:
# the next one writes to the same workers' links and reads their replies.


async def settled(aws: Iterable[Awaitable[T]]) -> list[T]:
    """Every awaitable run to its end, then the first failure raised: one rank's shipment
    failing (its worker lost) neither cuts the others' off (a shard cut short closes its
    worker's link) nor leaves them sending frames beside the next conversation's."""
    got = await asyncio.gather(*aws, return_exceptions=True)
    for g in got:
        if isinstance(g, BaseException):
            raise g
    return got  # type: ignore[return-value]


async def all_or_none(aws: Iterable[Awaitable[T]]) -> list[T]:
    """Every awaitable's result; on the first failure the others are cancelled: readers of the
    workers' replies that went on would take (and drop) the next conversation's."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for t in tasks:
            t.cancel()  # (nothing for those done)
