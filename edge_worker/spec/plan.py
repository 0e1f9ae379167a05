"""Parallel plans as values, and the arithmetic that turns shares into whole units.

A plan is computed once (by the planner, or by `galaxy verify` from `--split`) and given to
every rank; ranks never re-plan. Allotments are lists, one entry per rank in ring order, and
uneven by design: `heads`, `mlp_columns` and `layers` are absolute counts, while the sequence
split is stored as weights because the sequence length is only known per request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from edge_worker.errors import PlanError
from edge_worker.spec.config import ModelConfig

WireDtype = Literal["float32", "float16", "bfloat16", "int8"]
# Activations on the wire; "int8" moves gathered rows as int8 (a scale per tile) and partial
# sums as fp16 (engine/wire.py).
WIRE_DTYPES: tuple[WireDtype, ...] = ("float32", "float16", "bfloat16", "int8")
INT8_TILE = 32  # int8 wire: values sharing one fp32 scale
_VALUE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "int8": 1}
Strategy = Literal["local", "tp", "sp", "pp", "hmp"]
STRATEGIES: tuple[Strategy, ...] = ("local", "tp", "sp", "pp", "hmp")
DecodeStrategy = Literal["tp", "local"]


COLUMN_ALIGN = 64  # MLP shares in multiples of this: GEMMs of unaligned widths run slower


def split_columns(total: int, weights: list[float]) -> list[int]:
    """MLP columns in proportion to `weights`, in whole blocks of `COLUMN_ALIGN` (the remainder,
    if `total` is not a multiple, to the largest share). On this CPU a share of 1621 columns
    ran its MLP at 78-88% of the speed of 1600 or 1664 (`python -m galaxy_bench.mlp_widths`,
    bench/RESULTS.md).
    >>> split_columns(4864, [2, 1])
    [3264, 1600]
    """
    blocks = total // COLUMN_ALIGN
    if blocks < len(weights):
        return split_by_weights(total, weights)
    shares = [b * COLUMN_ALIGN for b in split_by_weights(blocks, weights)]
    shares[shares.index(max(shares))] += total - sum(shares)
    return shares


def split_by_weights(total: int, weights: list[float], *, minimum: int = 1) -> list[int]:
    """Split `total` whole units in proportion to `weights` by largest remainder.

    Every share gets at least `minimum` units; ties in the remainder go to the earlier rank.
    >>> split_by_weights(12, [1, 2, 3])
    [2, 4, 6]
    """
    n = len(weights)
    if n == 0:
        raise PlanError("cannot split over zero devices")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise PlanError(f"split weights must be non-negative with a positive sum, got {weights}")
    if total < minimum * n:
        raise PlanError(
            f"cannot give each of {n} devices at least {minimum} of {total} units; "
            "use fewer devices"
        )
    wsum = float(sum(weights))
    exact = [total * w / wsum for w in weights]
    shares = [int(e) for e in exact]
    order = sorted(range(n), key=lambda i: (-(exact[i] - shares[i]), i))
    for i in order[: total - sum(shares)]:
        shares[i] += 1
    # Lift any share below the minimum with units from the currently largest share.
    for i in range(n):
        while shares[i] < minimum:
            donor = max(range(n), key=lambda j: (shares[j], -j))
            shares[donor] -= 1
            shares[i] += 1
    return shares


def offsets(sizes: list[int]) -> list[range]:
    """Contiguous ranges for consecutive sizes: [2, 3] -> [range(0, 2), range(2, 5)]."""
    out, start = [], 0
    for s in sizes:
        out.append(range(start, start + s))
        start += s
    return out


@dataclass(frozen=True)
class ParallelPlan:
    """How one model runs over `world_size` ranks.

    - hmp (Galaxy): `heads`/`mlp_columns` per rank (tensor parallel), sequence chunks in
      proportion to `seq_weights` for the connective blocks (sequence parallel).
    - tp (Megatron-LM): `heads`/`mlp_columns` per rank; connective blocks replicated.
    - sp: every rank holds every weight; sequence chunks by `seq_weights`.
    - pp: contiguous ranges of `layers` per rank.
    - local: one rank, the whole model.
    `decode` says how a decoder's one-token steps run after prefill: "tp" over the same heads
    and columns (KV cache sharded by heads), or "local" on the last rank. `overlap` turns on
    hmp's tile-based overlap of the ring with the GEMMs (one tile per ring chunk).
    `wire_dtype` is the dtype activations travel in (fp16/bf16 halve the bytes; int8 sends
    gathered activations as int8 with a scale per row and partial sums as fp16, engine/wire.py;
    all at a cost in accuracy that `galaxy verify --wire` and the benchmark report).
    """

    strategy: Strategy
    world_size: int
    heads: tuple[int, ...] = ()
    mlp_columns: tuple[int, ...] = ()
    seq_weights: tuple[float, ...] = ()
    layers: tuple[int, ...] = ()
    decode: DecodeStrategy = "tp"
    overlap: bool = False
    wire_dtype: WireDtype = "float32"
    names: tuple[str, ...] = field(default=())

    def seq_split(self, seq_len: int) -> list[int]:
        """Tokens per rank for a sequence of `seq_len` (only sp and hmp split the sequence)."""
        if self.strategy not in ("sp", "hmp") or self.world_size == 1:
            return [seq_len] + [0] * (self.world_size - 1) if self.world_size > 1 else [seq_len]
        if seq_len < self.world_size:
            # A prompt shorter than the ring: the first ranks take one token each.
            return [1] * seq_len + [0] * (self.world_size - seq_len)
        return split_by_weights(seq_len, list(self.seq_weights))


def wire_bytes(wire_dtype: str, width: int, summed: bool = False) -> int:
    """Bytes of one row of `width` activations on the wire: moved whole (all-gather, send),
    or as a partial sum (reduce-scatter, all-reduce: an int8 wire sums in fp16)."""
    if wire_dtype != "int8":
        return _VALUE_BYTES[wire_dtype] * width
    if summed:
        return 2 * width
    return width + 4 * -(-width // INT8_TILE)  # int8 values, then one fp32 scale per tile


def plan_from_dict(fields: dict[str, object]) -> ParallelPlan:
    """Rebuild a plan sent as JSON (lists back to tuples); `validate` it before use."""
    known = set(ParallelPlan.__dataclass_fields__)
    unknown = set(fields) - known
    if unknown:
        raise PlanError(f"plan has unknown fields {sorted(unknown)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    return ParallelPlan(**values)  # type: ignore[arg-type]


def make_plan(
    cfg: ModelConfig, strategy: Strategy, weights: list[float], **options: object
) -> ParallelPlan:
    """Build a plan from relative device weights (`--split`), rounding to whole units.

    Heads are split by `split_heads`: whole KV groups when there are at least as many groups as
    devices, else query heads (groups replicated where a device's heads need them). `tp` uses
    the given weights too; pass equal weights for Megatron-LM's even split.
    """
    n = len(weights)
    if strategy == "local":
        if n != 1:
            raise PlanError(f"strategy 'local' runs on one device, not {n}")
        return validate(cfg, ParallelPlan("local", 1, **options))  # type: ignore[arg-type]
    heads: tuple[int, ...] = ()
    cols: tuple[int, ...] = ()
    layers: tuple[int, ...] = ()
    if strategy in ("tp", "hmp"):
        heads = split_heads(cfg, weights)
        cols = tuple(split_columns(cfg.intermediate_size, weights))
    if strategy == "pp":
        layers = tuple(split_by_weights(cfg.n_layers, weights))
    plan = ParallelPlan(
        strategy,
        n,
        heads=heads,
        mlp_columns=cols,
        seq_weights=tuple(float(w) for w in weights),
        layers=layers,
        **options,  # type: ignore[arg-type]
    )
    return validate(cfg, plan)


# ----- query heads and the key/value heads they need ------------------------------------------


def split_heads(
    cfg: ModelConfig, weights: list[float], *, by_groups: bool | None = None
) -> tuple[int, ...]:
    """Query heads per device in proportion to `weights`.

    By whole KV groups (every device computes only its own groups' K/V, no replicas) when
    `by_groups`, by single query heads otherwise (a group whose heads land on several devices
    has its K/V projection replicated on each, as Megatron-LM and vLLM do when the tensor-
    parallel size exceeds the KV heads). The default splits by groups when there are at least
    as many groups as devices. Qwen2.5-0.5B (14 heads in 2 groups of 7) on 3 equal devices:
    (5, 5, 4), the middle device projecting both groups' K/V.
    """
    n = len(weights)
    if by_groups is None:
        by_groups = n <= cfg.n_kv_heads
    if not by_groups:
        if n > cfg.n_heads:
            raise PlanError(
                f"{n} devices but the model has only {cfg.n_heads} attention heads; tensor "
                f"parallelism needs at least one head per device: use at most {cfg.n_heads} devices"
            )
        return tuple(split_by_weights(cfg.n_heads, weights))
    if n > cfg.n_kv_heads:
        raise PlanError(
            f"{n} devices but the model has only {cfg.n_kv_heads} key/value head groups to split "
            f"whole: use at most {cfg.n_kv_heads} devices, or split by query heads"
        )
    return tuple(g * cfg.group_size for g in split_by_weights(cfg.n_kv_heads, weights))


def kv_range(cfg: ModelConfig, heads: range) -> range:
    """The key/value heads that query heads `heads` attend with: every group they touch
    (groups of 7: heads 5-9 touch groups 0 and 1, so range(0, 2)).
    """
    g = cfg.group_size
    return range(heads.start // g, -(-heads.stop // g))


def kv_heads(cfg: ModelConfig, plan: ParallelPlan) -> tuple[int, ...]:
    """Key/value heads each rank of a tp/hmp plan projects and caches (replicas counted on
    every rank that holds them; the sum exceeds `cfg.n_kv_heads` when groups are split)."""
    return tuple(len(kv_range(cfg, r)) for r in offsets(list(plan.heads)))


def kv_owned(cfg: ModelConfig, plan: ParallelPlan) -> list[range]:
    """Each rank's key/value heads with replicas given to the first rank that holds them:
    disjoint, in order, together all of `range(cfg.n_kv_heads)` (some may be empty). What a
    rank contributes when the K/V cache is gathered to one device."""
    out, done = [], 0
    for heads in offsets(list(plan.heads)):
        kv = kv_range(cfg, heads)
        out.append(range(max(kv.start, done), max(kv.stop, done)))
        done = max(done, kv.stop)
    return out


def whole_groups(cfg: ModelConfig, heads: tuple[int, ...]) -> bool:
    """True when every share of `heads` is whole KV groups (no K/V replicated anywhere)."""
    return all(h % cfg.group_size == 0 for h in heads)


def validate(cfg: ModelConfig, plan: ParallelPlan) -> ParallelPlan:
    """Check a plan against a model before any compute; raise PlanError saying what is wrong."""
    n = plan.world_size
    if plan.strategy not in STRATEGIES:
        raise PlanError(
            f"unknown strategy {plan.strategy!r}; choose one of {', '.join(STRATEGIES)}"
        )
    if n < 1:
        raise PlanError("a plan needs at least one device")
    if plan.strategy == "local" and n != 1:
        raise PlanError(f"strategy 'local' runs on one device, not {n}")
    if plan.strategy in ("tp", "hmp"):
        _check_shares("heads", plan.heads, cfg.n_heads, n)
        _check_shares("MLP columns", plan.mlp_columns, cfg.intermediate_size, n)
    if plan.strategy in ("sp", "hmp"):
        if len(plan.seq_weights) != n:
            raise PlanError(f"sequence weights {list(plan.seq_weights)} do not name {n} devices")
        if any(w <= 0 for w in plan.seq_weights):
            raise PlanError(f"every device needs a positive sequence share, got {plan.seq_weights}")
    if plan.strategy == "pp":
        _check_shares("layers", plan.layers, cfg.n_layers, n)
    if plan.wire_dtype not in WIRE_DTYPES:
        raise PlanError(f"wire dtype must be one of {', '.join(WIRE_DTYPES)}")
    if plan.decode not in ("tp", "local"):
        raise PlanError(f"decode strategy must be 'tp' or 'local', not {plan.decode!r}")
    return plan


def _check_shares(what: str, shares: tuple[int, ...], total: int, n: int) -> None:
    if len(shares) != n:
        raise PlanError(f"{what} split {list(shares)} names {len(shares)} devices, plan has {n}")
    if any(s <= 0 for s in shares):
        raise PlanError(
            f"{what} split {list(shares)} leaves a device with no work; every share must be >= 1"
        )
    if sum(shares) != total:
        raise PlanError(
            f"{what} split {list(shares)} sums to {sum(shares)}, but the model has {total}"
        )
