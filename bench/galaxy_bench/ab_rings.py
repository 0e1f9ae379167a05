"""The rings the data plane A/B compares (dataplane_ab.py), each with the same two calls,
`all_gather(x, sizes, dim)` and `reduce_scatter(x, sizes, dim)`:

    tcp_ring      the product's TcpRingCommunicator in the rank process (`patched` connects
                  it as the ring before sealed records, or with its link threads at nice +5);
    ProcessRing   a TcpRingCommunicator in a child process, tensors through a shared arena;
    GlooRing      torch.distributed gloo on loopback (no TLS, even splits).
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import os
import time
import warnings
from collections.abc import Iterator
from functools import partialmethod
from multiprocessing.connection import Connection
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor

from edge_worker.comm import link as ring_link
from edge_worker.comm import tls as ring_tls
from edge_worker.comm.tcp import TcpRingCommunicator
from edge_worker.service.credentials import Credentials


@contextlib.contextmanager
def patched(variant: str) -> Iterator[None]:
    """Rings connected inside: thread-tlsrecords stays on TLS records (no switch to sealed
    records); thread-tls-nice5 runs its link threads at nice +5 (link.RING_NICE)."""
    seal, nice = ring_tls._seal, ring_link.RING_NICE
    if variant == "thread-tlsrecords":
        ring_tls._seal = lambda tls, server_side: tls  # type: ignore[assignment,return-value]
    if variant == "thread-tls-nice5":
        ring_link.RING_NICE = 5
    try:
        yield
    finally:
        ring_tls._seal, ring_link.RING_NICE = seal, nice


def tcp_ring(rank: int, world: int, token: bytes, tls_dir: Path | None) -> TcpRingCommunicator:
    names = [f"rank{r}" for r in range(world)]
    creds = Credentials.load(tls_dir / names[rank] / "credentials") if tls_dir else None
    if tls_dir and creds is None:
        raise FileNotFoundError(f"no ring credentials for {names[rank]} in {tls_dir}")
    tls = creds.ring_contexts() if creds else None
    return TcpRingCommunicator(rank, world, token, timeout=60.0, names=names, tls=tls)


class ProcessRing:
    """A TcpRingCommunicator in a child process (prototype: synchronous all_gather and
    reduce_scatter only). The arena is one shared uint8 tensor: the caller copies the input to
    its first half, the child writes the result to the second half, the caller copies it out.
    Descriptors (op, shape, sizes, dim) and replies (shape, child CPU s) go over a pipe."""

    def __init__(self, rank: int, world: int, token: bytes, tls: Path | None, cap: int) -> None:
        self.half, self.child_cpu = cap, 0.0
        self.arena = torch.empty(2 * cap, dtype=torch.uint8).share_memory_()
        ctx = mp.get_context("spawn")
        self.conn, child_end = ctx.Pipe()
        args = (child_end, self.arena, cap, rank, world, token, tls)
        self.proc = ctx.Process(target=_comm_child, args=args, daemon=True)
        self.proc.start()
        self.address = self.conn.recv()

    def connect(self, peers: list[tuple[str, int]]) -> None:
        self.conn.send(peers)
        if (reply := self.conn.recv()) != "connected":
            raise RuntimeError(f"communication process failed: {reply}")

    def _op(self, kind: str, x: Tensor, sizes: list[int], dim: int) -> Tensor:
        _view(self.arena, 0, x.shape).copy_(x)
        self.conn.send((kind, tuple(x.shape), sizes, dim))
        reply = self.conn.recv()
        if isinstance(reply, str):
            raise RuntimeError(reply)
        shape, self.child_cpu = reply
        return _view(self.arena, self.half, shape).clone()

    all_gather = partialmethod(_op, "all_gather")
    reduce_scatter = partialmethod(_op, "reduce_scatter")

    def close(self) -> None:
        self.conn.send(None)
        self.proc.join(10)


def _view(arena: Tensor, offset: int, shape: tuple[int, ...]) -> Tensor:
    n = 4 * math.prod(shape)
    return arena[offset : offset + n].view(torch.float32).view(shape)


def _comm_child(
    conn: Connection, arena: Tensor, half: int, rank: int, world: int, token: bytes,
    tls: Path | None,
) -> None:  # fmt: skip
    torch.set_num_threads(1)
    comm = tcp_ring(rank, world, token, tls)
    conn.send(comm.address)
    try:
        comm.connect(conn.recv())
        conn.send("connected")
        while (msg := conn.recv()) is not None:
            kind, shape, sizes, dim = msg
            y = getattr(comm, kind)(_view(arena, 0, shape), sizes, dim)
            _view(arena, half, tuple(y.shape)).copy_(y)
            conn.send((tuple(y.shape), time.process_time()))
    except Exception as exc:
        conn.send(f"{type(exc).__name__}: {exc}")
    finally:
        comm.close()


class GlooRing:
    """torch.distributed gloo on the loopback interface. Gloo needs even splits: each share
    is padded to the largest (at most one row more per rank here)."""

    def __init__(self, rank: int, world: int, store: Path) -> None:
        os.environ["GLOO_SOCKET_IFNAME"] = "lo"
        warnings.filterwarnings("ignore", category=FutureWarning)
        dist.init_process_group("gloo", store=dist.FileStore(str(store), world), rank=rank,
                                world_size=world)  # fmt: skip
        self.rank, self.address = rank, None

    def connect(self, peers: list[None]) -> None:  # joined in the constructor
        pass

    def all_gather(self, x: Tensor, sizes: list[int], dim: int) -> Tensor:
        m, mine = max(sizes), x.movedim(dim, 0)
        padded = torch.zeros((m, *mine.shape[1:]))
        padded[: sizes[self.rank]] = mine
        out = torch.empty((len(sizes) * m, *mine.shape[1:]))
        dist.all_gather_into_tensor(out, padded)
        return torch.cat([out[r * m : r * m + s] for r, s in enumerate(sizes)]).movedim(0, dim)

    def reduce_scatter(self, x: Tensor, sizes: list[int], dim: int) -> Tensor:
        m, whole = max(sizes), x.movedim(dim, 0)
        padded = torch.zeros((len(sizes) * m, *whole.shape[1:]))
        for r, part in enumerate(whole.split(sizes)):
            padded[r * m : r * m + sizes[r]] = part
        out = torch.empty((m, *whole.shape[1:]))
        dist.reduce_scatter_tensor(out, padded)
        return out[: sizes[self.rank]].movedim(0, dim)

    def close(self) -> None:
        dist.destroy_process_group()


Ring = TcpRingCommunicator | ProcessRing | GlooRing
