"""This worker's side of its rings: made on its one data port, formed one at a time beside
the control link's reader, and called off when their plan is released.

A ring listens on the worker's data port from construction until it is connected, so rings
form one at a time. Forming waits for every peer, up to the ring's deadline (60 s by default).
It runs beside the reader (link.py runs Connect and Probe as tasks of their own), so a peer
that never comes (it died as the plan deployed) holds up no other message: the gateway's
shards, Releases and Runs still go through. A Release of the plan calls the forming off
(`call_off`) instead of leaving it to hold the data port for the rest of its deadline.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Sequence

from edge_worker.comm.tcp import TcpRingCommunicator
from edge_worker.errors import CommError
from edge_worker.service import protocol as P
from edge_worker.service.checks import BadMessage

log = logging.getLogger(__name__)


class Rings:
    """This worker's rings, on its data port (`host`, `port`); each waits `timeout` s at most
    for its peers, and for each transfer."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._lock: asyncio.Lock | None = None
        self._forming: dict[object, TcpRingCommunicator] = {}  # by plan id

    def new_link(self) -> None:
        """A new control link (and event loop): rings form one at a time from here."""
        self.call_off_all()
        self._lock = asyncio.Lock()

    async def form(
        self,
        rank: int,
        peers: Sequence[P.Peer],
        token: str,
        max_tensor_bytes: int,
        tls: tuple[ssl.SSLContext, ssl.SSLContext] | None,
        plan_id: str | None = None,
        wanted: Callable[[], bool] = lambda: True,
    ) -> TcpRingCommunicator | None:
        """Rank `rank` of a ring of `peers` (mutual TLS with `tls`), made in turn (it listens
        on the data port) and connected.

        None when it is no longer `wanted` once its turn comes, or its plan was called off
        while it formed (the ring then closed). CommError when it did not form (closed too);
        BadMessage for a rank outside the ring.
        """
        if self._lock is None:
            raise RuntimeError("Rings.new_link() must come before form()")
        if rank >= len(peers):
            raise BadMessage("bad_message", f"rank {rank} of a ring of {len(peers)}")
        async with self._lock:
            if not wanted():
                return None
            comm = TcpRingCommunicator(
                rank,
                len(peers),
                bytes.fromhex(token),
                self.host,
                self.port,
                timeout=self.timeout,
                names=[p.name for p in peers],
                tls=tls,
                max_tensor_bytes=max_tensor_bytes,
            )
            key: object = plan_id if plan_id is not None else object()
            self._forming[key] = comm
            try:
                await asyncio.to_thread(comm.connect, [(p.host, p.port) for p in peers])
            except CommError:
                comm.close()
                if self._forming.pop(key, None) is None:
                    log.info("the ring of plan %s was called off before it formed", plan_id)
                    return None
                raise
            except BaseException:
                self._forming.pop(key, None)
                comm.abort()  # (cancelled: the thread gives up at once, its ring unused)
                raise
            if self._forming.pop(key, None) is None:  # called off just as it formed
                comm.close()
                return None
            return comm

    def call_off_all(self) -> None:
        """The control link is gone: no ring still forming is wanted."""
        for comm in self._forming.values():
            comm.abort()
        self._forming.clear()

    def call_off(self, plan_id: str) -> bool:
        """Stop plan `plan_id`'s ring from forming, if it is; whether it was."""
        comm = self._forming.pop(plan_id, None)
        if comm is not None:
            comm.abort()
        return comm is not None
