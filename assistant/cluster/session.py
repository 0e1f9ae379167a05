"""A connected worker as the coordinator sees it: its hello, its socket, its inbox of messages."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import websockets
from torch import Tensor
from websockets.asyncio.server import ServerConnection

from edge_worker.errors import CommTimeout, GalaxyError, WorkerLost
from edge_worker.service import protocol as P
from edge_worker.service import tensors as wire

_CLOSED = object()


@dataclass
class WorkerSession:
    """One connected worker: its hello, its socket, and the messages it has sent.

    The worker reads on while it runs (protocol 4), so two conversations share its link: runs
    (Run -> Result and its tensor frames, or an Error naming the run) and control (deploy,
    profile, probe). The link's reader sorts what arrives (`deliver`) into `runs` and `inbox`,
    so a deployment waiting for Loaded never takes a run's Result, nor a run a deployment's."""

    hello: P.Hello
    ws: ServerConnection
    inbox: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)  # control replies
    runs: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)  # run replies
    alive: bool = True
    cached: set[str] = field(default_factory=set)  # shard hashes the worker holds on disk
    running: int | None = None  # a run sent and not answered yet
    _frames_owed: int = 0  # tensor frames still to come after a Result

    def __post_init__(self) -> None:
        self.cached.update(self.hello.cached_shards)

    @property
    def name(self) -> str:
        return self.hello.name

    def deliver(self, item: P.Message | bytes) -> None:
        """Sort one message (or binary frame) from the link into its conversation."""
        if isinstance(item, bytes):
            if self._frames_owed > 0:
                self._frames_owed -= 1
                self.runs.put_nowait(item)
            else:
                self.inbox.put_nowait(item)
        elif isinstance(item, P.Result):
            self._frames_owed = len(item.tensors)
            self.runs.put_nowait(item)
        elif isinstance(item, P.Error) and item.run_id is not None:
            self.runs.put_nowait(item)
        else:
            self.inbox.put_nowait(item)

    async def next(
        self, timeout: float, run_id: int | None = None, plan_id: str | None = None
    ) -> Any:
        """The next control message (or, with `run_id`, the next reply to a run), parsed, or a
        binary frame; WorkerLost if the link closed.

        An Error answering another run than `run_id`, or about another plan than `plan_id`, is
        stale (a run that already failed, a plan given up) and skipped; any other Error is
        raised.
        """
        queue = self.inbox if run_id is None else self.runs
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), timeout)
            except TimeoutError:
                raise CommTimeout(f"worker {self.name} sent nothing for {timeout:.0f} s") from None
            if item is _CLOSED:
                self.alive = False
                queue.put_nowait(_CLOSED)  # every later reader sees the closed link too
                raise WorkerLost(self.name, "control link closed")
            if isinstance(item, P.Error):
                if (item.run_id is not None and item.run_id != run_id) or (
                    item.plan_id is not None and item.plan_id != plan_id
                ):
                    continue
                if item.code == "worker_lost":
                    raise WorkerLost(self.name, item.text)
                raise GalaxyError(f"worker {self.name} reports {item.code}: {item.text}")
            return item

    async def result(self, run_id: int, timeout: float) -> RankResult:
        """The worker's answer to run `run_id`: its Result and tensors (what is left of
        earlier, failed runs is skipped); its Error for the run raises. Clears `running`."""
        try:
            while True:
                item = await self.next(timeout, run_id)
                if isinstance(item, P.Result) and item.run_id == run_id:
                    break
        except CommTimeout:
            raise
        except GalaxyError:  # the worker answered this run with an Error: it is free again
            self.running = None
            raise
        tensors = {}
        for _ in item.tensors:
            name, t = wire.decode(await self.next(timeout, run_id))
            tensors[name] = t
        self.running = None
        return RankResult(item, tensors)

    async def responsive(self, timeout: float) -> bool:
        """Whether the worker answers a ping within `timeout` seconds. Its event loop answers
        even while its compute thread is busy; a frozen process (SIGSTOP, a hung machine) does
        not, though its socket stays open."""
        try:
            async with asyncio.timeout(timeout):
                await (await self.ws.ping())
        except (TimeoutError, websockets.ConnectionClosed):
            return False
        return True

    def cut(self) -> None:
        """Drop the link at once, with no closing handshake (a frozen worker would never answer
        it). The link's reader then ends the session as for any closed link."""
        self.alive = False
        self.ws.transport.abort()

    async def send_frame(self, frame: bytes, stall_s: float) -> None:
        """Send one (large) frame, cutting the link when the worker takes nothing of it for
        `stall_s` seconds. A frozen worker's socket stays open, so the send would wait forever,
        and the heartbeats, queued behind the frame, could not notice (the websockets library
        waits for its buffer to drain before it gives up on a missed pong)."""
        send = asyncio.ensure_future(self.ws.send(frame))
        transport, last, still = self.ws.transport, -1, 0.0
        try:
            while not (await asyncio.wait({send}, timeout=1.0))[0]:
                size = transport.get_write_buffer_size()
                last, still = size, (still + 1.0 if size == last else 0.0)
                if still >= stall_s:
                    self.cut()
                    raise WorkerLost(self.name, f"took no data for {stall_s:.0f} s: frozen?")
            send.result()
        except websockets.ConnectionClosed as exc:
            self.alive = False
            raise WorkerLost(self.name, "control link closed") from exc
        finally:
            send.cancel()  # (a no-op once sent)

    def link_closed(self) -> None:
        """Called by the link's reader when the socket closes: every reader then sees it."""
        self.inbox.put_nowait(_CLOSED)
        self.runs.put_nowait(_CLOSED)

    async def send(self, msg: P.Message) -> None:
        try:
            await self.ws.send(msg.model_dump_json())
        except websockets.ConnectionClosed as exc:
            self.alive = False
            raise WorkerLost(self.name, "control link closed") from exc


@dataclass
class RankResult:
    result: P.Result
    tensors: dict[str, Tensor]
