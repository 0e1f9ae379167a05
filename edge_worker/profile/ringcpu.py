"""What this device's ring costs in CPU per MB: measured, not assumed.

The ring's threads receive each piece (sealed records: a socket read and an AES-GCM open,
comm/sealed.py), add it into a partial sum (reduce-scatter) or not (all-gather), and send
it on (a seal and a socket write). Where the ring has no core of its own, that CPU comes out of
the compute (`assistant/planner/profiles.py` `ring_cpu_cost`). `ring_cpu_ms_per_mb()` moves
`mb` MB through a sealed TCP connection over loopback on this machine, as the ring does (the
kernel's TCP path included), and returns the CPU time of both ends per MB (thread CPU time: a
CPU quota stretches the wall time, not this): one send and one receive per MB, as a rank
relays what it receives. About 0.1 s of CPU.
"""

from __future__ import annotations

import os
import socket
import threading
import time

import torch

from edge_worker.comm.sealed import SealedSocket, direction_keys

PIECE_BYTES = 1 << 20  # the ring's largest piece (comm/framing.py MAX_PIECE_BYTES)


def ring_cpu_ms_per_mb(mb: int = 32) -> float:
    """CPU ms to send and receive one MB through sealed records, with the reduce-scatter's
    add on half of the pieces (this machine, one core)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:  # TCP: the ring's kernel path
        a = socket.create_connection(listener.getsockname()[:2], timeout=30)
        b, _ = listener.accept()
    to_b, to_a = direction_keys(os.urandom(32), os.urandom(32))
    tx = SealedSocket(a.detach(), to_b, to_a, tls_version=None, tls_cipher=None, timeout=30)
    rx = SealedSocket(b.detach(), to_a, to_b, tls_version=None, tls_cipher=None, timeout=30)
    payload = memoryview(bytearray(os.urandom(PIECE_BYTES)))
    received: list[float] = []

    def receive() -> None:
        t0 = time.thread_time()
        piece = bytearray(PIECE_BYTES)
        values = torch.frombuffer(piece, dtype=torch.float32)
        total = torch.zeros_like(values)
        for i in range(mb):
            got, view = 0, memoryview(piece)
            while got < PIECE_BYTES:
                k = rx.recv_into(view[got:], PIECE_BYTES - got)
                if k == 0:
                    raise EOFError("the measuring socket closed early")
                got += k
            if i % 2:
                total.add_(values)
        received.append(time.thread_time() - t0)

    with tx, rx:
        reader = threading.Thread(target=receive, name="ring-cpu-probe", daemon=True)
        reader.start()
        t0 = time.thread_time()
        for _ in range(mb):
            tx.sendall(payload)
        sent = time.thread_time() - t0
        reader.join(60)
    if not received:
        raise RuntimeError("the ring CPU probe's receiver did not finish")
    return (sent + received[0]) * 1e3 / mb
