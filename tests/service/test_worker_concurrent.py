"""A worker reads on while it runs (protocol version 4): a new plan deploys beside a run still
computing on the old one, a released plan is gone, and a Result's tensor frames follow it
directly however busy the link is.

An in-process worker serves a raw websocket server on 127.0.0.1 that the test speaks the
protocol on itself (messages from `protocol`, shards cut by `ShardCache`, frames by `tensors`).
A run is held mid-computation, deterministically, by a hook on its model's layers."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from functools import cache
from pathlib import Path
from typing import TypeVar

import pytest
import torch
from websockets.asyncio.server import ServerConnection, serve

from assistant.cluster.shards import ShardCache
from edge_worker.engine.loader import from_hf
from edge_worker.engine.weights import ModelWeights
from edge_worker.service import protocol as P
from edge_worker.service import tensors as wire
from edge_worker.service.worker import Worker
from edge_worker.spec.config import ModelConfig
from edge_worker.spec.plan import make_plan
from tests.equivalence.models import assert_within_tolerance, reference, tiny_model

TIMEOUT_S = 30.0
IDS = [[5, 17, 3, 9, 41, 2]]
Frame = P.Message | bytes
M = TypeVar("M", bound=P.Message)


@cache
def model(family: str) -> tuple[ModelConfig, ModelWeights]:
    return from_hf(tiny_model(family))


class Link:
    """The coordinator's end of one worker's control link."""

    def __init__(self, ws: ServerConnection, worker: Worker) -> None:
        self.ws, self.worker = ws, worker
        self.shards = ShardCache()
        self.run_ids = iter(range(1, 10**6))

    async def send(self, *frames: str | bytes) -> None:
        for f in frames:
            await self.ws.send(f)

    async def recv(self) -> Frame:
        """The next frame from the worker: a parsed message, or a tensor frame's bytes."""
        frame = await asyncio.wait_for(self.ws.recv(), TIMEOUT_S)
        return frame if isinstance(frame, bytes) else P.parse(frame)

    async def expect(self, kind: type[M]) -> M:
        msg = await self.recv()
        assert isinstance(msg, kind), msg
        return msg

    async def assign(
        self, plan_id: str, family: str, others: list[P.Peer] | None = None
    ) -> list[str | bytes]:
        """An Assign of `family`'s tiny model on this worker alone (or as rank 0 of a tp ring
        with `others`), and its tensor frames."""
        cfg, weights = model(family)
        others = others or []
        plan = make_plan(cfg, "tp" if others else "local", [1.0] * (1 + len(others)))
        meta, digest = await self.shards.digest(cfg, weights, plan, 0)
        tensors, _ = await self.shards.cut(cfg, weights, plan, 0)
        peer = P.Peer(name=self.worker.name, host="127.0.0.1", port=self.worker.data_port)
        msg = P.Assign(
            plan_id=plan_id,
            rank=0,
            peers=[peer, *others],
            token="ab" * 16,
            config=asdict(cfg),
            plan=asdict(plan),
            shard_hash=digest,
            shard_meta=meta,
            shard_tensors=len(tensors),
        )
        return [msg.model_dump_json(), *(wire.encode(n, t) for n, t in tensors.items())]

    async def deploy(self, plan_id: str, family: str) -> None:
        await self.send(*await self.assign(plan_id, family))
        assert (await self.expect(P.Loaded)).plan_id == plan_id
        await self.send(P.Connect(plan_id=plan_id).model_dump_json())
        assert (await self.expect(P.Ready)).plan_id == plan_id

    def run(self, plan_id: str, ids: list[list[int]] = IDS) -> tuple[int, str]:
        """A prefill Run asking for logits: (its run id, the message)."""
        run_id = next(self.run_ids)
        msg = P.Run(run_id=run_id, plan_id=plan_id, op="prefill", want="logits", input_ids=ids)
        return run_id, msg.model_dump_json()

    async def result(self, run_id: int) -> dict[str, torch.Tensor]:
        """The next message must be `run_id`'s Result: its tensors, from the frames after it."""
        result = await self.expect(P.Result)
        assert result.run_id == run_id, result
        return await self.tensors(result)

    async def tensors(self, result: P.Result) -> dict[str, torch.Tensor]:
        """The tensor frames that must come right after `result`."""
        return {name: await self.tensor(name) for name in result.tensors}

    async def tensor(self, name: str) -> torch.Tensor:
        frame = await self.recv()
        assert isinstance(frame, bytes), f"expected the tensor frame {name}, got {frame}"
        got, t = wire.decode(frame)
        assert got == name
        return t


@pytest.fixture
async def link(tmp_path: Path) -> AsyncIterator[Link]:
    """A worker serving a websocket server of the test's, Hello read; Shutdown at the end."""
    worker = Worker("w", tmp_path)
    accepted: asyncio.Queue[ServerConnection] = asyncio.Queue()

    async def handler(ws: ServerConnection) -> None:
        await accepted.put(ws)
        await ws.wait_closed()

    async with serve(handler, sock=small_window(), max_size=None, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        serving = asyncio.create_task(worker.serve(f"ws://127.0.0.1:{port}"))
        link = Link(await asyncio.wait_for(accepted.get(), TIMEOUT_S), worker)
        await link.expect(P.Hello)
        try:
            yield link
        finally:
            await link.send(P.Shutdown().model_dump_json())
            stopped = await asyncio.wait_for(serving, TIMEOUT_S)
            worker.compute.shutdown()
    assert stopped is True
    assert not worker.deployments  # the link's end closed every ring


def small_window() -> socket.socket:
    """A listening socket on 127.0.0.1 whose connections take in little at a time: a large
    frame from the worker then waits for this end to read (as over a slow link), rather than
    vanishing into loopback's megabytes of socket buffers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def hold_runs(worker: Worker, plan_id: str) -> tuple[threading.Event, threading.Event]:
    """Make runs on `plan_id` stop at their first layer, on the compute thread, until `go` is
    set: (started, go). As a long computation would, only deterministic."""
    started, go = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        assert go.wait(TIMEOUT_S), "the test never let the run go on"

    worker.deployments[plan_id].model.on_layer = hold
    return started, go


async def test_a_plan_deploys_while_a_run_computes_on_another(link: Link) -> None:
    await link.deploy("a", "llama")
    started, go = hold_runs(link.worker, "a")
    first, run_first = link.run("a")
    second, run_second = link.run("a")
    await link.send(run_first, run_second)
    assert await asyncio.to_thread(started.wait, TIMEOUT_S)

    try:  # the run computes; the worker takes plan b, frames and all, and forms its ring
        await link.deploy("b", "qwen2")
    finally:
        go.set()

    # The runs answer afterwards, in their order, with the right numbers.
    llama = tiny_model("llama")
    ids = torch.tensor(IDS)
    for run_id in (first, second):
        assert_within_tolerance((await link.result(run_id))["logits"], reference(llama, ids))
    on_b, run_b = link.run("b")
    await link.send(run_b)
    assert_within_tolerance(
        (await link.result(on_b))["logits"], reference(tiny_model("qwen2"), ids)
    )


async def test_a_released_plan_is_gone_and_the_worker_serves_its_other_plans(link: Link) -> None:
    await link.deploy("a", "llama")
    await link.deploy("b", "qwen2")
    await link.send(*await link.assign("c", "llama"))
    await link.expect(P.Loaded)  # c is loaded, its ring not formed

    for plan_id in ("a", "c", "never-deployed"):  # an unknown plan: no answer at all
        await link.send(P.Release(plan_id=plan_id).model_dump_json())
    on_a, run_a = link.run("a")
    on_b, run_b = link.run("b")
    await link.send(run_a, P.Connect(plan_id="c").model_dump_json(), run_b)

    # Connect is answered by the reader, the runs by the run task in their order: two Errors
    # (in either order) and nothing else before b's Result.
    answers = []
    while not isinstance(msg := await link.recv(), P.Result):
        answers.append(msg)
    assert sorted((m.code, m.run_id or 0) for m in answers if isinstance(m, P.Error)) == [
        ("plan", 0),  # c's shard was freed: nothing to connect
        ("plan", on_a),
    ], answers
    assert len(answers) == 2, answers
    assert msg.run_id == on_b
    logits = (await link.tensors(msg))["logits"]
    assert_within_tolerance(logits, reference(tiny_model("qwen2"), torch.tensor(IDS)))
    assert set(link.worker.deployments) == {"b"} and not link.worker.loaded


async def test_a_results_frames_follow_it_while_the_reader_answers_other_messages(
    link: Link,
) -> None:
    """Large results (their frames wait for the link to drain: see `small_window`) while the
    reader answers a stream of control messages with Errors: nothing comes between a Result
    and its frames, and every message is answered."""
    await link.deploy("a", "llama")
    batch = [[(7 * i + j) % 96 for j in range(60)] for i in range(32)]
    runs = [link.run("a", batch) for _ in range(6)]
    stop = asyncio.Event()

    async def chatter() -> int:
        sent = 0
        while not stop.is_set():
            await link.send(P.Connect(plan_id="nope").model_dump_json())
            sent += 1
            await asyncio.sleep(0.001)
        return sent

    chatting = asyncio.create_task(chatter())
    await link.send(*(msg for _, msg in runs))
    results: list[int] = []
    errors = 0
    while len(results) < len(runs):
        msg = await link.recv()
        if isinstance(msg, P.Error):
            assert (msg.code, msg.run_id) == ("plan", None), msg
            errors += 1
            continue
        assert isinstance(msg, P.Result), f"a {type(msg).__name__} outside a Result"
        results.append(msg.run_id)
        for name in msg.tensors:
            await link.tensor(name)
    stop.set()
    sent = await chatting
    assert results == [run_id for run_id, _ in runs]
    assert errors > 0  # the reader did answer between the results
    for _ in range(sent - errors):
        await link.expect(P.Error)


async def test_a_run_between_a_shards_frames_is_served_and_the_shard_still_loads(
    link: Link,
) -> None:
    """The gateway does not hold requests back while a shard is on its way: a Run (and a
    Release) between two of its frames are handled, and the shard loads whole."""
    await link.deploy("a", "llama")
    await link.deploy("old", "llama")
    assign, *frames = await link.assign("b", "qwen2")
    assert len(frames) >= 2
    on_a, run_a = link.run("a")
    release = P.Release(plan_id="old").model_dump_json()
    await link.send(assign, frames[0], run_a, release, *frames[1:])

    got: dict[type, P.Message] = {}
    while len(got) < 2:  # the Result and Loaded, in either order
        msg = await link.recv()
        assert isinstance(msg, P.Result | P.Loaded), msg
        got[type(msg)] = msg
        if isinstance(msg, P.Result):
            assert msg.run_id == on_a
            logits = (await link.tensors(msg))["logits"]
            assert_within_tolerance(logits, reference(tiny_model("llama"), torch.tensor(IDS)))
    assert got[P.Loaded].plan_id == "b"  # type: ignore[attr-defined]
    await link.send(P.Connect(plan_id="b").model_dump_json())
    assert (await link.expect(P.Ready)).plan_id == "b"
    assert set(link.worker.deployments) == {"a", "b"}  # "old" released mid-shard


async def test_a_ring_whose_peer_never_comes_holds_up_nothing_and_its_release_calls_it_off(
    link: Link,
) -> None:
    """Plan "ghost" is a ring of two whose other device never comes (it died as the plan
    deployed). While the worker's side waits for it (up to the ring's 60 s deadline), the
    reader goes on: another plan loads. The ghost's Release calls its ring off at once and
    unanswered, so the other plan's ring, next in turn on the data port, forms and serves."""
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        gone = P.Peer(name="gone", host="127.0.0.1", port=closed.getsockname()[1])
    await link.send(*await link.assign("ghost", "llama", [gone]))
    assert (await link.expect(P.Loaded)).plan_id == "ghost"
    await link.send(P.Connect(plan_id="ghost").model_dump_json())
    await link.send(*await link.assign("b", "qwen2"))
    assert (await link.expect(P.Loaded)).plan_id == "b"  # the reader was not held up
    await link.send(P.Connect(plan_id="b").model_dump_json())
    await asyncio.sleep(0.5)
    assert "b" not in link.worker.deployments  # it waits its turn behind the ghost's ring

    released = time.monotonic()
    await link.send(P.Release(plan_id="ghost").model_dump_json())
    assert (await link.expect(P.Ready)).plan_id == "b"  # and no Error about the ghost
    assert time.monotonic() - released < 10, "the ghost's ring held the data port on"
    on_b, run_b = link.run("b")
    await link.send(run_b)
    logits = (await link.result(on_b))["logits"]
    assert_within_tolerance(logits, reference(tiny_model("qwen2"), torch.tensor(IDS)))
    assert set(link.worker.deployments) == {"b"} and not link.worker.loaded
