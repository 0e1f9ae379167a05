"""The worker's end of its control link: read, dispatch, guard, send.

The worker reads on while it runs (protocol version 4): `Run`s go, in arrival order, to one
task that executes them one after another, while the reader handles everything else (a new
plan's Assign and its tensor frames, Profile, Release) in order, and starts a task of its own
for each message of the `background` types (Connect, Probe: forming a ring waits for peers
that may never come; protocol version 6). So the gateway can deploy a plan beside the
requests still running on the old one. Every message is guarded: whatever goes wrong handling
it is answered with an `Error` (naming the run, for a Run) and the worker carries on. Sends
are serialized: a Result and its tensor frames go out back to back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import websockets
from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection

from edge_worker.service import protocol as P
from edge_worker.service.checks import BadMessage

log = logging.getLogger(__name__)
Handler = Callable[["ControlLink", Any], Awaitable[None]]  # one message type's handler


class ControlLink:
    """One connection to the coordinator: `handlers` by message type (run by the reader, in
    order, or on a task each for the `background` types), `run` for Runs (run by the runs
    task)."""

    def __init__(
        self,
        ws: ClientConnection,
        name: str,
        handlers: dict[type[P.Message], Handler],
        run: Handler,
        background: Collection[type[P.Message]] = (),
    ) -> None:
        self.ws, self.name, self.handlers, self.run = ws, name, handlers, run
        self.background = frozenset(background)
        self._send_lock = asyncio.Lock()
        self.runs: asyncio.Queue[P.Run] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()

    async def serve(self) -> bool:
        """Answer messages until Shutdown (True) or the link closes (False)."""
        runner = asyncio.create_task(self._runs(self.runs), name=f"{self.name}-runs")
        try:
            return await self._read(self.runs)
        finally:
            runner.cancel()  # a run still on the compute thread finishes there, unanswered
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(runner, *self._tasks, return_exceptions=True)

    async def send(self, *frames: str | bytes) -> None:
        """Send `frames` back to back: the reader and the runs task both send, and nothing of
        one may come between a Result and its tensor frames."""
        async with self._send_lock:
            for f in frames:
                await self.ws.send(f)

    async def error(
        self, code: str, text: str, run_id: int | None = None, plan_id: str | None = None
    ) -> None:
        log.warning("%s: %s: %s", self.name, code, text)
        error = P.Error(code=code, text=text, run_id=run_id, plan_id=plan_id)
        await self.send(error.model_dump_json())

    async def shard_frame(self) -> bytes:
        """The next tensor frame of a shard being received. A Run or a Release may come between
        two frames (the gateway does not hold requests back for a shard on its way): a Run is
        queued as usual, a Release handled; any other message is out of place."""
        while True:
            frame = await self.ws.recv()
            if isinstance(frame, bytes):
                return frame
            try:
                msg = P.parse(frame)
            except ValidationError as exc:
                raise BadMessage("bad_shard", f"a malformed message mid-shard: {exc}") from None
            if msg.version != P.VERSION:
                raise BadMessage("version", f"a message of protocol version {msg.version}")
            if isinstance(msg, P.Run):
                self.runs.put_nowait(msg)
            elif isinstance(msg, P.Release):
                await self._guarded(self.handlers[P.Release], msg)
            else:
                raise BadMessage("bad_shard", f"expected a tensor frame, got {type(msg).__name__}")

    async def _read(self, runs: asyncio.Queue[P.Run]) -> bool:
        """The reader: parse and check each message, queue Runs, handle the rest in order."""
        async for frame in self.ws:
            if isinstance(frame, bytes):
                await self.error("bad_message", "unexpected binary frame outside a shard")
                continue
            try:
                msg = P.parse(frame)
            except ValidationError as exc:
                await self.error("bad_message", f"malformed message: {exc.errors()[:2]}")
                continue
            if msg.version != P.VERSION:
                await self.error(
                    "version",
                    f"message of protocol version {msg.version}; this worker speaks "
                    f"{P.VERSION}: update the older side",
                )
                continue
            if isinstance(msg, P.Shutdown):
                log.info("%s: shutdown requested", self.name)
                return True
            if isinstance(msg, P.Run):
                runs.put_nowait(msg)
                continue
            handler = self.handlers.get(type(msg))
            if handler is None:
                await self.error("bad_message", f"a worker does not accept {type(msg).__name__}")
            elif type(msg) in self.background:
                task = asyncio.create_task(self._guarded(handler, msg))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            else:
                await self._guarded(handler, msg)
        return False

    async def _runs(self, runs: asyncio.Queue[P.Run]) -> None:
        """Execute the queued runs one after another, in arrival order, each guarded."""
        while True:
            await self._guarded(self.run, await runs.get())

    async def _guarded(self, handler: Handler, msg: P.Message) -> None:
        """Handle one message; whatever goes wrong is answered with an `Error` (with the run id
        when it is a Run) and the worker carries on. Only a closed link ends it."""
        run_id = msg.run_id if isinstance(msg, P.Run) else None
        try:
            await handler(self, msg)
        except BadMessage as exc:
            await self.error(exc.code, str(exc), run_id)
        except websockets.ConnectionClosed:
            raise
        except Exception as exc:  # the guard: one message's failure never ends the worker
            log.exception("%s: %s failed", self.name, type(msg).__name__)
            text = f"{type(exc).__name__} while handling {type(msg).__name__}: {exc}"
            await self.error("internal", text[:500], run_id)
