"""Requests share the cluster step by step.

Each step a request runs on the ring (a prefill, one decode step) takes the `step` lock, which
is first come, first served. So a short command that arrives during a 200-token answer runs
between two of the answer's decode steps instead of after its last one; the answer is delayed
by the command's steps and nothing else. Deployments do not take it: a new plan's shards ship
and its ring forms beside the requests (the workers read on while they run).

`StepRunner` is what a request's work function gets: the deployment's prefill and decode, each
taken through `step` and bound to the request's own KV-cache session on the workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from typing import Any, TypeVar

from torch import Tensor

T = TypeVar("T")


class ClusterGate:
    """The ring's turn: each step a request runs (a prefill, one decode step) and each
    measurement (profiling, link probes) takes `step`, first come, first served."""

    def __init__(self) -> None:
        self.step = asyncio.Lock()


class StepRunner:
    """A deployment's runner (`InProcessCluster` or `RemoteCluster`) as one request sees it,
    called from the request's worker thread: every call waits its turn for the ring on the
    event loop `loop`, and names the request's KV-cache `session`.

    `trace` records every step: `{"op", "tokens", "start_ms" (since the request's first step),
    "ms", "devices": {name: {"total_ms", "compute_ms", "wait_ms", "sent", "received",
    "layers"}}}` (`tokens`: the step's rows, a batch's padded length)
    from the workers' own reports (`layers`: per layer [compute ms, ring wait ms], prefill only),
    for the dashboard's timeline. The gateway's in-process device reports wall time only."""

    def __init__(
        self,
        inner: Any,
        loop: asyncio.AbstractEventLoop,
        step: asyncio.Lock,
        devices: list[str] | None = None,
    ) -> None:
        self.inner, self.loop, self.step = inner, loop, step
        self.devices = devices or ["gateway"]
        self.session = secrets.token_hex(8)
        self.trace: list[dict[str, Any]] = []
        self._t0: float | None = None

    def _in_turn(self, op: str, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        asyncio.run_coroutine_threadsafe(self.step.acquire(), self.loop).result()
        start = time.perf_counter()
        if self._t0 is None:
            self._t0 = start
        try:
            out = call(*args, **kwargs)
        finally:
            with contextlib.suppress(RuntimeError):  # the loop closed: the gateway is stopping
                self.loop.call_soon_threadsafe(self.step.release)
        tokens = int(args[0].shape[-1]) if args and hasattr(args[0], "shape") else 0
        self.trace.append(self._entry(op, tokens, start, time.perf_counter()))
        return out

    def _entry(self, op: str, tokens: int, start: float, end: float) -> dict[str, Any]:
        assert self._t0 is not None
        devices: dict[str, dict[str, Any]] = {}
        for r in getattr(self.inner, "last", None) or []:
            res = r.result
            if res.rank >= len(self.devices):
                continue
            devices[self.devices[res.rank]] = {
                "total_ms": round(res.total_ms, 2),
                "compute_ms": round(res.compute_ms, 2),
                "wait_ms": round(res.comm_wait_ms, 2),
                "sent": res.bytes_sent,
                "received": res.bytes_received,
                **(
                    {"layers": [[round(x.compute_ms, 2), round(x.comm_ms, 2)] for x in res.layers]}
                    if op == "prefill"
                    else {}
                ),
            }
        if not devices:
            devices = {self.devices[0]: {"total_ms": round((end - start) * 1e3, 2)}}
        return {
            "op": op,
            "tokens": tokens,
            "start_ms": round((start - self._t0) * 1e3, 2),
            "ms": round((end - start) * 1e3, 2),
            "devices": devices,
        }

    def prefill(
        self,
        input_ids: Tensor,
        token_type_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        want: str = "hidden",
    ) -> Any:
        return self._in_turn(
            "prefill",
            self.inner.prefill,
            input_ids,
            token_type_ids,
            attention_mask,
            want=want,
            session=self.session,
        )

    def prefill_last_logits(self, input_ids: Tensor) -> Tensor:
        out: Tensor = self._in_turn(
            "prefill", self.inner.prefill_last_logits, input_ids, session=self.session
        )
        return out

    def decode(self, token_ids: Tensor) -> Tensor:
        out: Tensor = self._in_turn("decode", self.inner.decode, token_ids, session=self.session)
        return out
