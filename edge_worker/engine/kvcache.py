"""A rank's key/value caches, and how its query heads meet its key/value heads.

Caches: one per generation session (generations interleaved step by step each keep their own;
at most `MAX_SESSIONS`, the least recently used dropped). A cache holds, per layer, K and V of
the rank's key/value heads, (B, n_kv_rank, T, head_dim): under tp/hmp that is every group the
rank's query heads touch, so a group split between ranks is cached on each of them.

Heads: rank r's query heads `heads` attend with key/value heads `plan.kv_range(heads)`. When its
share is whole groups, or lies inside one group, `layers.attend` repeats K/V by group itself (no
extra copy). Otherwise (5 query heads of groups of 7, heads 5-9: two of group 0, three of
group 1) `expand` picks each query head's K/V head with `index_select`, so attend sees groups
of one. Only the rank's own shard is expanded; the whole model (a rank decoding alone) never is.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor

from edge_worker.comm.base import Communicator
from edge_worker.spec.config import ModelConfig
from edge_worker.spec.plan import ParallelPlan, kv_owned, kv_range, offsets

MAX_SESSIONS = 4  # generations whose KV caches a rank keeps at once; the least recent is dropped
KVState = tuple[list[tuple[Tensor, Tensor]], Tensor | None, int]  # (cache, key mask, past)


class SessionCaches:
    """The current session's cache (`cache`, `key_mask`, `past` tokens) and the parked ones."""

    def __init__(self) -> None:
        self.cache: list[tuple[Tensor, Tensor]] = []  # per layer: K, V (B, n_kv_rank, T, hd)
        self.key_mask: Tensor | None = None  # (B, T) bool, False for padding
        self.past = 0
        self.session = ""
        self._parked: OrderedDict[str, KVState] = OrderedDict()

    def reset(self) -> None:
        """Empty the current session's cache (a new prompt)."""
        self.cache, self.key_mask, self.past = [], None, 0

    def use(self, session: str) -> None:
        """Make `session`'s cache the current one, parking the previous one; a session never
        seen (or dropped) starts empty."""
        if session == self.session:
            return
        self._parked[self.session] = (self.cache, self.key_mask, self.past)
        self._parked.move_to_end(self.session)
        self.cache, self.key_mask, self.past = self._parked.pop(session, ([], None, 0))
        self.session = session
        while len(self._parked) >= MAX_SESSIONS:
            self._parked.popitem(last=False)

    def append(self, i: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add new keys/values (B, n_kv_rank, T_new, hd) to layer `i`; returns all of them."""
        if i < len(self.cache):
            pk, pv = self.cache[i]
            k, v = torch.cat([pk, k], dim=2), torch.cat([pv, v], dim=2)  # (B, n_kv, T+1, hd)
            self.cache[i] = (k, v)
        else:
            self.cache.append((k, v))
        return k, v

    def grow_mask(self) -> None:
        """A decode step's new key is never padding."""
        if self.key_mask is not None:
            ones = torch.ones_like(self.key_mask[:, :1])
            self.key_mask = torch.cat([self.key_mask, ones], dim=1)


def expand_index(cfg: ModelConfig, plan: ParallelPlan, rank: int) -> Tensor | None:
    """For each of rank's query heads, the index of its K/V head among the rank's K/V heads, or
    None when `attend`'s repeat by group already pairs them (whole groups, or one group)."""
    if plan.strategy not in ("tp", "hmp") or not plan.heads:
        return None
    heads = offsets(list(plan.heads))[rank]
    kv = kv_range(cfg, heads)
    if len(kv) == 1 or len(heads) == len(kv) * cfg.group_size:
        return None
    return torch.tensor([h // cfg.group_size - kv.start for h in heads], dtype=torch.long)


def expand(q: Tensor, k: Tensor, v: Tensor, index: Tensor | None) -> tuple[Tensor, Tensor]:
    """K and V (B, n_kv_rank, T, hd) made one per query head (B, n_q_rank, T, hd) when this
    rank's shard needs it (`expand_index`); unchanged otherwise, and for the whole model's
    q (which has more heads than the shard's index)."""
    if index is None or q.shape[1] != index.numel():
        return k, v
    return k.index_select(1, index), v.index_select(1, index)


def gather_to_decoder(
    comm: Communicator,
    cfg: ModelConfig,
    plan: ParallelPlan,
    cache: list[tuple[Tensor, Tensor]],
    keep: bool,
) -> list[tuple[Tensor, Tensor]]:
    """All-gather every layer's K/V along the head dim, each K/V head once: a rank sends only
    the heads it owns (`plan.kv_owned`: a replicated group comes from the first rank holding
    it), so the result is exactly (B, n_kv_heads, T, hd). Returns it if `keep`, else []."""
    owned = kv_owned(cfg, plan)
    sizes = [len(r) for r in owned]
    mine = owned[comm.rank]
    lo = mine.start - kv_range(cfg, offsets(list(plan.heads))[comm.rank]).start
    out = []
    for k, v in cache:
        k = comm.all_gather(k[:, lo : lo + len(mine)].contiguous(), sizes, dim=1)
        v = comm.all_gather(v[:, lo : lo + len(mine)].contiguous(), sizes, dim=1)
        out.append((k, v))
    return out if keep else []
