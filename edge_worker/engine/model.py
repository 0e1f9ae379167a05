"""One rank's share of a Transformer forward pass, for every parallel strategy.

The same layer code serves all strategies; only the collectives around the tensor-parallel
region change (Megatron-LM's "regions"):

    strategy  enter TP region (before QKV / MLP up)     leave TP region (after out-proj / down)
    hmp       all-gather along the sequence  (S_i->S)   reduce-scatter along the sequence (S->S_i)
    tp        identity (x is replicated)                all-reduce
    local     identity                                  identity (a world of one)

`sp` keeps every weight on every rank and all-gathers K and V along the sequence inside
attention; `pp` runs a contiguous range of layers and passes the hidden state to the next rank.

Placement of the ends of the network:
- embeddings: every rank holds the token table and embeds only the tokens it owns (its
  sequence chunk for hmp/sp, everything for tp, rank 0 for pp), so no communication is needed;
- the final norm is a connective block: on each rank's chunk (hmp/sp), replicated (tp);
- the output head is sequence-parallel too: each rank projects its own tokens, and for
  generation only the owner of the last token projects it. Tied heads share the token table.
Decode steps (one token) have no sequence to split: hmp decodes tensor-parallel over the same
heads and columns (its KV cache is already sharded by heads), or on the last rank alone when the
plan says `decode="local"`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from edge_worker.comm.base import Communicator
from edge_worker.engine import layers as L
from edge_worker.engine.kvcache import (
    MAX_SESSIONS,
    SessionCaches,
    expand,
    expand_index,
    gather_to_decoder,
)
from edge_worker.engine.overlap import (
    gather_project_reduce,
    gather_then_project,
    project_then_reduce_scatter,
)
from edge_worker.engine.weights import Layer, ModelWeights
from edge_worker.engine.wire import Wire
from edge_worker.errors import PlanError
from edge_worker.spec.config import ModelConfig
from edge_worker.spec.plan import ParallelPlan, offsets

Want = Literal["hidden", "logits", "last_logits"]
Region = Callable[[Tensor], Tensor]


@dataclass
class RankOutput:
    """What a rank returns: rows `seq` of the hidden state or logits (B, len(seq), ·)."""

    seq: range
    hidden: Tensor | None = None
    logits: Tensor | None = None


class RankModel:
    """Runs `plan` for one rank holding `weights` (its shard), talking through `comm`.

    `full` is the whole model, given only to the rank that decodes alone (`decode="local"`).
    """

    def __init__(
        self,
        cfg: ModelConfig,
        weights: ModelWeights,
        plan: ParallelPlan,
        comm: Communicator,
        full: ModelWeights | None = None,
    ) -> None:
        self.cfg, self.w, self.plan, self.comm, self.full = cfg, weights, plan, comm, full
        self.rank, self.world = comm.rank, comm.world_size
        # Every generation's KV cache (kvcache.py); query heads of a split KV group pair with
        # their K/V heads through `kv_index` (None when attend's repeat by group does it).
        self.kv = SessionCaches()
        self.kv_index = expand_index(cfg, plan, self.rank)
        self.trace: list[tuple[float, float, float]] = []  # per layer: wall, comm wait, CPU s
        self.on_layer: Callable[[], None] | None = None  # at a layer's end, before its timing
        self.decoder_rank = self.world - 1
        self.wire = Wire(plan.wire_dtype)  # float32 | float16 | bfloat16 | int8 (wire.py)
        self.dtype = weights.layers[0].attn.wq.dtype if weights.layers else torch.float32

    # ----- public entry points ---------------------------------------------------------------

    def _timed(self, layer_fn: Callable[..., Tensor], *args: Any) -> Tensor:
        """Run one layer, recording its wall time, the time spent waiting on the ring and the
        CPU time of this (the compute) thread: wall - wait - CPU is time the thread was ready
        but not running (a CPU quota, a core taken by other threads, the GIL)."""
        stats = getattr(self.comm, "stats", None)
        w0, t0, c0 = (stats.wait_s if stats else 0.0), time.perf_counter(), time.thread_time()
        out = layer_fn(*args)
        if self.on_layer is not None:
            self.on_layer()
        wall, wait = time.perf_counter() - t0, (stats.wait_s if stats else 0.0) - w0
        cpu = time.thread_time() - c0
        self.trace.append((wall, wait, cpu))
        return out

    @torch.inference_mode()
    def prefill(
        self,
        input_ids: Tensor,
        token_type_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        want: Want = "hidden",
        session: str = "",
    ) -> RankOutput | None:
        """Process a whole prompt (B, T); returns this rank's rows of the output, or None.
        The KV cache it leaves belongs to `session` (decode steps name it)."""
        self.kv.use(session)
        self.kv.reset()
        self.kv.key_mask = attention_mask.bool() if attention_mask is not None else None
        t = input_ids.shape[1]
        s = self.plan.strategy
        self.trace = []
        if s == "pp":
            out = self._prefill_pipeline(input_ids, token_type_ids, want)
        elif s == "sp":
            out = self._prefill_sequence(input_ids, token_type_ids, want)
        else:
            out = self._prefill_tensor(input_ids, token_type_ids, want)
        self.kv.past = t
        if s == "hmp" and self.plan.decode == "local":
            keep = self.rank == self.decoder_rank
            self.kv.cache = gather_to_decoder(self.comm, self.cfg, self.plan, self.kv.cache, keep)
        return out

    @torch.inference_mode()
    def decode(self, token_ids: Tensor, session: str = "") -> RankOutput | None:
        """One generation step for new tokens (B, 1) after `session`'s prompt and earlier
        steps; the last rank returns their logits."""
        self.kv.use(session)
        if self.kv.past == 0:
            raise PlanError(
                f"decode step for session {session!r} without its prefill (never run, or "
                f"dropped: a rank keeps {MAX_SESSIONS} generations at once)"
            )
        self.kv.grow_mask()
        pos = range(self.kv.past, self.kv.past + 1)
        s = self.plan.strategy
        self.trace = []
        if s == "pp":
            out = self._pipeline(token_ids, None, pos, "last_logits")
        elif s == "sp" or (s == "hmp" and self.plan.decode == "local"):
            out = self._decode_alone(token_ids, pos)
        else:  # hmp (decode="tp"), tp and local: tensor parallel over heads and columns
            x = L.embed(self.cfg, self.w, token_ids, None, pos)
            answers = self.rank == self.world - 1
            out = self._stack(x, pos, L_identity, self._all_reduce, pos, "last_logits", answers)
        self.kv.past += 1
        return out

    # ----- collectives, in the plan's wire dtype ------------------------------------------------

    def _all_gather(self, x: Tensor, sizes: list[int], dim: int) -> Tensor:
        """Gathered along `dim` (never the last: int8 rows carry their scale there)."""
        return self.wire.unpack(self.comm.all_gather(self.wire.pack(x), sizes, dim), x.dtype)

    def _reduce_scatter(self, x: Tensor, sizes: list[int], dim: int) -> Tensor:
        return self.comm.reduce_scatter(x.to(self.wire.reduce_dtype), sizes, dim).to(x.dtype)

    def _all_reduce(self, x: Tensor) -> Tensor:
        return self.comm.all_reduce(x.to(self.wire.reduce_dtype)).to(x.dtype)

    # ----- strategies -------------------------------------------------------------------------

    def _prefill_tensor(self, ids: Tensor, types: Tensor | None, want: Want) -> RankOutput | None:
        t = ids.shape[1]
        if self.plan.strategy == "hmp":
            sizes = self.plan.seq_split(t)
            mine = offsets(sizes)[self.rank]

            def enter(x: Tensor) -> Tensor:
                """gather_from_sequence_region: all-gather chunks S_i along dim 1 -> S."""
                return self._all_gather(x, sizes, dim=1)

            def leave(p: Tensor) -> Tensor:
                """reduce_scatter_to_sequence_region: sum partials, keep rows S_i (dim 1)."""
                return self._reduce_scatter(p, sizes, dim=1)

            x = L.embed(self.cfg, self.w, ids[:, mine.start : mine.stop], types, mine)
            if self.plan.overlap:
                for i, layer in enumerate(self.w.layers):
                    x = self._timed(self._overlap_layer, x, layer, i, sizes)
                return self._finish(self.w, x, mine, t, want)
            return self._stack(x, mine, enter, leave, range(0, t), want, True)
        # tp / local: every rank holds the whole (replicated) sequence; the last rank answers.
        full = range(0, t)
        x = L.embed(self.cfg, self.w, ids, types, full)
        return self._stack(
            x, full, L_identity, self._all_reduce, full, want, self.rank == self.world - 1
        )

    def _stack(
        self,
        x: Tensor,
        mine: range,
        enter: Region,
        leave: Region,
        whole: range,
        want: Want,
        answers: bool,
    ) -> RankOutput | None:
        """Tensor-parallel layers with connective blocks on rows `mine` of `whole`."""
        for i, layer in enumerate(self.w.layers):
            x = self._timed(self._tp_layer, x, layer, i, enter, leave, whole.start)
        return self._finish(self.w, x, mine, whole.stop, want) if answers else None

    def _tp_layer(
        self, x: Tensor, layer: Layer, i: int, enter: Region, leave: Region, q_start: int
    ) -> Tensor:
        cfg = self.cfg
        pre = cfg.norm_placement == "pre"
        # Attention: this rank's heads over the whole sequence, out-projection partial sums.
        a_in = enter(L.norm(x, layer.attn_norm, cfg) if pre else x)  # (B, T, h)
        q, k, v = L.qkv(a_in, layer.attn, cfg, self._rope(range(q_start, q_start + a_in.shape[1])))
        o = self._attend(i, q, k, v, q_start)
        a = leave(L.linear(o, layer.attn.wo))  # (B, T_i, h): reduced over heads
        if layer.attn.bo is not None:
            a = a + layer.attn.bo
        x = x + a if pre else L.norm(x + a, layer.attn_norm, cfg)
        # MLP: this rank's intermediate columns, down-projection partial sums.
        m_in = enter(L.norm(x, layer.mlp_norm, cfg) if pre else x)  # (B, T, h)
        m = leave(L.mlp_partial(m_in, layer.mlp, cfg))  # (B, T_i, h): reduced over columns
        if layer.mlp.b_down is not None:
            m = m + layer.mlp.b_down
        return x + m if pre else L.norm(x + m, layer.mlp_norm, cfg)

    def _overlap_layer(self, x: Tensor, layer: Layer, i: int, sizes: list[int]) -> Tensor:
        """The hmp layer of `_tp_layer`, with the ring overlapped with GEMM tiles."""
        cfg, comm, wire = self.cfg, self.comm, self.wire
        pre = cfg.norm_placement == "pre"
        t = sum(sizes)

        def qkv_tile(rows: Tensor, out: Tensor) -> Tensor:
            return L.qkv_project(wire.unpack(rows, x.dtype), layer.attn, out)

        a_src = L.norm(x, layer.attn_norm, cfg) if pre else x
        width = L.qkv_width(layer.attn)
        y = gather_then_project(comm, wire.pack(a_src), sizes, width, qkv_tile, x.dtype)
        q, k, v = L.qkv_heads(y, layer.attn, cfg, self._rope(range(0, t)))
        o = self._attend(i, q, k, v, 0)
        b, h = x.shape[0], x.shape[2]

        def out_tile(rows: Tensor, out: Tensor) -> Tensor:
            return L.linear_into(rows, layer.attn.wo, None, out)

        a = project_then_reduce_scatter(comm, o, sizes, (b, t, h), wire.reduce_dtype, out_tile)
        a = a.to(x.dtype)  # (B, T_i, h)
        if layer.attn.bo is not None:
            a = a + layer.attn.bo
        x = x + a if pre else L.norm(x + a, layer.attn_norm, cfg)

        def mlp_tile(rows: Tensor, out: Tensor) -> Tensor:
            return L.mlp_partial(wire.unpack(rows, x.dtype), layer.mlp, cfg, out)

        m_src = L.norm(x, layer.mlp_norm, cfg) if pre else x
        m_in = wire.pack(m_src)
        m = gather_project_reduce(comm, m_in, sizes, h, wire.reduce_dtype, mlp_tile).to(x.dtype)
        if layer.mlp.b_down is not None:
            m = m + layer.mlp.b_down
        return x + m if pre else L.norm(x + m, layer.mlp_norm, cfg)

    def _prefill_sequence(self, ids: Tensor, types: Tensor | None, want: Want) -> RankOutput:
        """Sequence parallelism (Li et al.): all weights everywhere, K/V all-gathered."""
        sizes = self.plan.seq_split(ids.shape[1])
        mine = offsets(sizes)[self.rank]
        x = L.embed(self.cfg, self.w, ids[:, mine.start : mine.stop], types, mine)
        for i, layer in enumerate(self.w.layers):
            x = self._timed(self._sp_layer, x, layer, i, mine, sizes)
        out = self._finish(self.w, x, mine, ids.shape[1], want)
        return out if out is not None else RankOutput(mine)

    def _sp_layer(self, x: Tensor, layer: Layer, i: int, mine: range, sizes: list[int]) -> Tensor:
        cfg = self.cfg
        pre = cfg.norm_placement == "pre"
        q, k, v = L.qkv(
            L.norm(x, layer.attn_norm, cfg) if pre else x, layer.attn, cfg, self._rope(mine)
        )
        k = self._all_gather(k, sizes, dim=2)  # (B, n_kv_heads, T, hd): every chunk's keys
        v = self._all_gather(v, sizes, dim=2)
        if cfg.causal and self.rank == self.decoder_rank:
            self.kv.cache.append((k, v))  # every rank sees all K/V; the decoding rank keeps them
        o = L.attend(q, k, v, causal=cfg.causal, q_start=mine.start, key_mask=self.kv.key_mask)
        a = L.linear(o, layer.attn.wo, layer.attn.bo)
        x = x + a if pre else L.norm(x + a, layer.attn_norm, cfg)
        m = L.mlp_partial(L.norm(x, layer.mlp_norm, cfg) if pre else x, layer.mlp, cfg)
        if layer.mlp.b_down is not None:
            m = m + layer.mlp.b_down
        return x + m if pre else L.norm(x + m, layer.mlp_norm, cfg)

    def _prefill_pipeline(self, ids: Tensor, types: Tensor | None, want: Want) -> RankOutput | None:
        return self._pipeline(ids, types, range(0, ids.shape[1]), want)

    def _pipeline(
        self, ids: Tensor, types: Tensor | None, pos: range, want: Want
    ) -> RankOutput | None:
        """Pipeline parallelism: layers [first, first+len) here; hidden state passed along."""
        if self.rank == 0:
            x = L.embed(self.cfg, self.w, ids, types, pos)
        else:
            x = self.wire.unpack(self.comm.recv(self.rank - 1), self.dtype)  # (B, T, h) from rank-1
        for i, layer in enumerate(self.w.layers):
            x = self._timed(self._tp_layer, x, layer, i, L_identity, L_identity, pos.start)
        if self.rank < self.world - 1:
            self.comm.send(self.wire.pack(x), self.rank + 1)
            return None
        return self._finish(self.w, x, pos, pos.stop, want)

    def _decode_alone(self, token_ids: Tensor, pos: range) -> RankOutput | None:
        """Decode on the last rank with the whole model and the whole KV cache."""
        if self.rank != self.decoder_rank:
            return None
        w = self.full if self.full is not None else self.w
        x = L.embed(self.cfg, w, token_ids, None, pos)
        for i, layer in enumerate(w.layers):
            x = self._tp_layer(x, layer, i, L_identity, L_identity, pos.start)
        return self._finish(w, x, pos, pos.stop, "last_logits")

    # ----- the ends of the network ------------------------------------------------------------

    def _finish(
        self, w: ModelWeights, x: Tensor, mine: range, seq_len: int, want: Want
    ) -> RankOutput | None:
        if w.final_norm is not None:
            x = L.norm(x, w.final_norm, self.cfg)
        if want == "hidden":
            return RankOutput(mine, hidden=x)
        assert w.lm_head is not None, "this model has no output head"
        if want == "logits":
            return RankOutput(mine, logits=L.linear(x, w.lm_head))
        if seq_len - 1 not in mine:
            return None
        last = x[:, seq_len - 1 - mine.start :]  # (B, 1, h)
        return RankOutput(range(seq_len - 1, seq_len), logits=L.linear(last, w.lm_head))

    def _rope(self, pos: range) -> tuple[Tensor, Tensor] | None:
        if self.cfg.positions != "rope":
            return None
        w = self.w if self.w.rope_inv_freq is not None or self.full is None else self.full
        assert w.rope_inv_freq is not None
        dtype = (w.tok_embeddings if w.tok_embeddings is not None else w.layers[0].attn.wq).dtype
        positions = torch.arange(pos.start, pos.stop)
        return L.rope_cos_sin(positions, w.rope_inv_freq, w.rope_scaling, dtype)

    def _attend(self, i: int, q: Tensor, k: Tensor, v: Tensor, q_start: int) -> Tensor:
        """Attention of layer `i` with its new K/V appended to the cache (decoders); K/V of a
        split group paired with their query heads (kvcache.py)."""
        if self.cfg.causal:
            k, v = self.kv.append(i, k, v)
        k, v = expand(q, k, v, self.kv_index)
        return L.attend(q, k, v, causal=self.cfg.causal, q_start=q_start, key_mask=self.kv.key_mask)


def L_identity(x: Tensor) -> Tensor:
    """A region boundary that needs no communication (replicated tensors)."""
    return x
