"""Run a plan on N in-process ranks (threads), and put the ranks' outputs back together.

This is the engine's single-process harness: `galaxy verify --transport inproc`, the engine
tests and the gateway's own in-process worker use it. Networked ranks implement the same
`prefill`/`decode` calls over the wire.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
from torch import Tensor

from edge_worker.comm.local import LocalGroup
from edge_worker.engine.model import RankModel, RankOutput, Want
from edge_worker.engine.shard import decodes_alone, shard_for_rank
from edge_worker.engine.weights import ModelWeights
from edge_worker.spec.config import ModelConfig
from edge_worker.spec.plan import ParallelPlan, validate


@dataclass
class Output:
    """A whole model's output: hidden (B, T, h) or logits (B, T or 1, V)."""

    hidden: Tensor | None
    logits: Tensor | None


def assemble(parts: list[RankOutput | None]) -> Output:
    """Concatenate ranks' rows in sequence order (ranks that answered nothing are skipped)."""
    got = sorted((p for p in parts if p is not None), key=lambda p: p.seq.start)
    got = [p for p in got if len(p.seq) > 0]
    if not got:
        raise RuntimeError("no rank returned an output")
    hidden = [p.hidden for p in got if p.hidden is not None]
    logits = [p.logits for p in got if p.logits is not None]
    return Output(
        hidden=torch.cat(hidden, dim=1) if hidden else None,
        logits=torch.cat(logits, dim=1) if logits else None,
    )


class InProcessCluster:
    """`plan.world_size` ranks on threads, each with its shard and a local communicator."""

    def __init__(
        self, cfg: ModelConfig, weights: ModelWeights, plan: ParallelPlan, timeout: float = 120.0
    ) -> None:
        validate(cfg, plan)
        self.cfg, self.plan = cfg, plan
        self.group = LocalGroup(plan.world_size, timeout)
        self.ranks = [
            RankModel(
                cfg,
                shard_for_rank(cfg, weights, plan, r),
                plan,
                self.group.comms[r],
                full=weights if decodes_alone(plan, r) else None,
            )
            for r in range(plan.world_size)
        ]
        self._pool = ThreadPoolExecutor(plan.world_size, thread_name_prefix="rank")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.group.close()

    def __enter__(self) -> InProcessCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, call: str, *args: object, **kwargs: object) -> list[RankOutput | None]:
        futures = [self._pool.submit(getattr(r, call), *args, **kwargs) for r in self.ranks]
        results: list[RankOutput | None] = []
        error: BaseException | None = None
        for f in futures:
            try:
                results.append(f.result())
            except BaseException as exc:  # one rank failed: release the others at once
                self.group.abort()
                error = error or exc
        if error is not None:
            raise error
        return results

    def prefill(
        self,
        input_ids: Tensor,
        token_type_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        want: Want = "hidden",
        session: str = "",
    ) -> Output:
        return assemble(
            self._run(
                "prefill",
                input_ids,
                token_type_ids=token_type_ids,
                attention_mask=attention_mask,
                want=want,
                session=session,
            )
        )

    def decode(self, token_ids: Tensor, session: str = "") -> Tensor:
        """Logits (B, V) for the next token after `token_ids` (B, 1) in `session`."""
        out = assemble(self._run("decode", token_ids, session=session))
        assert out.logits is not None
        return out.logits[:, -1]

    def prefill_last_logits(self, input_ids: Tensor, session: str = "") -> Tensor:
        """Logits (B, V) for the token after the prompt `input_ids` (B, T)."""
        out = self.prefill(input_ids, want="last_logits", session=session)
        assert out.logits is not None
        return out.logits[:, -1]
