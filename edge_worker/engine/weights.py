"""Weights in the engine's own layout, and how a rank's shard is cut from them.

Layout follows `torch.nn.Linear`: a projection's weight is (out_features, in_features).
Attention heads are rows of `wq`/`wk`/`wv` and columns of `wo`; MLP columns are rows of
`w_up`/`w_gate` and columns of `w_down`. A shard keeps the *row-parallel* biases (`bo`,
`b_down`) whole: they are added once, after the reduction, by whoever owns the reduced rows.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from torch import Tensor


@dataclass
class Norm:
    weight: Tensor  # (h,)
    bias: Tensor | None  # (h,) for LayerNorm, None for RMSNorm


@dataclass
class Attention:
    wq: Tensor  # (n_heads_per_rank * head_dim, h)
    wk: Tensor  # (n_kv_heads_per_rank * head_dim, h)
    wv: Tensor  # (n_kv_heads_per_rank * head_dim, h)
    wo: Tensor  # (h, n_heads_per_rank * head_dim)
    bq: Tensor | None = None
    bk: Tensor | None = None
    bv: Tensor | None = None
    bo: Tensor | None = None  # (h,), added after the reduction


@dataclass
class MLP:
    w_up: Tensor  # (intermediate_per_rank, h)
    w_down: Tensor  # (h, intermediate_per_rank)
    w_gate: Tensor | None = None  # (intermediate_per_rank, h), SwiGLU only
    b_up: Tensor | None = None
    b_down: Tensor | None = None  # (h,), added after the reduction


@dataclass
class Layer:
    attn: Attention
    mlp: MLP
    attn_norm: Norm
    mlp_norm: Norm


@dataclass
class ModelWeights:
    """A whole model, or one rank's shard of it (same type; the shapes say which).

    `layers` may hold only a contiguous range of layers (pipeline shards): `first_layer` is the
    global index of `layers[0]`. Tables a rank does not need are None.
    """

    layers: list[Layer]
    tok_embeddings: Tensor | None = None  # (vocab, h)
    pos_embeddings: Tensor | None = None  # (max_positions + offset, h)
    type_embeddings: Tensor | None = None  # (type_vocab, h)
    embed_norm: Norm | None = None
    final_norm: Norm | None = None
    lm_head: Tensor | None = None  # (vocab, h); tied models share storage with tok_embeddings
    rope_inv_freq: Tensor | None = None  # (head_dim // 2,)
    rope_scaling: float = 1.0
    first_layer: int = 0


def _rows(t: Tensor | None, start: int, stop: int) -> Tensor | None:
    return None if t is None else t[start:stop].contiguous()


def shard_attention(attn: Attention, head_dim: int, heads: range, kv_heads: range) -> Attention:
    """Keep query heads `heads` and key/value heads `kv_heads` (every group `heads` touch,
    `plan.kv_range`: a group split between ranks is copied to each)."""
    q0, q1 = heads.start * head_dim, heads.stop * head_dim
    k0, k1 = kv_heads.start * head_dim, kv_heads.stop * head_dim
    return Attention(
        wq=attn.wq[q0:q1].contiguous(),
        wk=attn.wk[k0:k1].contiguous(),
        wv=attn.wv[k0:k1].contiguous(),
        wo=attn.wo[:, q0:q1].contiguous(),
        bq=_rows(attn.bq, q0, q1),
        bk=_rows(attn.bk, k0, k1),
        bv=_rows(attn.bv, k0, k1),
        bo=attn.bo,
    )


def shard_mlp(mlp: MLP, columns: range) -> MLP:
    """Keep intermediate columns `columns` of the up/gate (rows) and down (columns) projections."""
    c0, c1 = columns.start, columns.stop
    return MLP(
        w_up=mlp.w_up[c0:c1].contiguous(),
        w_down=mlp.w_down[:, c0:c1].contiguous(),
        w_gate=_rows(mlp.w_gate, c0, c1),
        b_up=_rows(mlp.b_up, c0, c1),
        b_down=mlp.b_down,
    )


def shard_layer(
    layer: Layer, head_dim: int, heads: range, kv_heads: range, columns: range
) -> Layer:
    return replace(
        layer,
        attn=shard_attention(layer.attn, head_dim, heads, kv_heads),
        mlp=shard_mlp(layer.mlp, columns),
    )


def tensor_bytes(weights: ModelWeights) -> int:
    """Bytes held by a model or shard, counting shared storage (tied head) once."""
    seen: set[tuple[int, tuple[int, ...]]] = set()
    total = 0

    def add(t: Tensor | None) -> None:
        nonlocal total
        if t is None:
            return
        key = (t.data_ptr(), tuple(t.shape))
        if key in seen:
            return
        seen.add(key)
        total += t.nelement() * t.element_size()

    def walk(obj: object) -> None:
        for f in fields(obj):  # type: ignore[arg-type]
            value = getattr(obj, f.name)
            if isinstance(value, Tensor):
                add(value)
            elif isinstance(value, (Norm, Attention, MLP, Layer)):
                walk(value)
            elif isinstance(value, list):
                for item in value:
                    walk(item)

    walk(weights)
    return total


def flatten(weights: ModelWeights) -> tuple[dict[str, Tensor], dict[str, object]]:
    """Named tensors and scalar metadata of a model or shard, for the wire or the disk.

    Names follow the dataclass fields ("layers.3.attn.wq"). A tensor that shares storage with
    one already named (a tied output head) is listed in `meta["aliases"]` instead of twice.
    """
    tensors: dict[str, Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple[int, int, tuple[int, ...]], str] = {}

    def put(name: str, t: Tensor) -> None:
        key = (t.untyped_storage().data_ptr(), int(t.storage_offset()), tuple(t.shape))
        if key in seen:
            aliases[name] = seen[key]
        else:
            seen[key] = name
            tensors[name] = t.contiguous()

    def walk(prefix: str, obj: object) -> None:
        for f in fields(obj):  # type: ignore[arg-type]
            value = getattr(obj, f.name)
            if isinstance(value, Tensor):
                put(prefix + f.name, value)
            elif isinstance(value, (Norm, Attention, MLP, Layer)):
                walk(f"{prefix}{f.name}.", value)
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    walk(f"{prefix}{f.name}.{i}.", item)

    walk("", weights)
    meta: dict[str, object] = {
        "n_layers": len(weights.layers),
        "first_layer": weights.first_layer,
        "rope_scaling": weights.rope_scaling,
        "aliases": aliases,
    }
    return tensors, meta


def unflatten(tensors: dict[str, Tensor], meta: dict[str, object]) -> ModelWeights:
    """Inverse of `flatten`: rebuild the dataclasses, re-tying aliased tensors."""
    aliases = meta.get("aliases", {})
    assert isinstance(aliases, dict)
    named = dict(tensors)
    for name, target in aliases.items():
        named[name] = named[target]

    def get(name: str) -> Tensor | None:
        return named.get(name)

    def norm(prefix: str) -> Norm | None:
        w = get(prefix + ".weight")
        return None if w is None else Norm(w, get(prefix + ".bias"))

    def need(name: str) -> Tensor:
        t = get(name)
        if t is None:
            raise KeyError(f"shard lacks tensor {name}")
        return t

    layers = []
    for i in range(int(meta["n_layers"])):  # type: ignore[call-overload]
        p = f"layers.{i}."
        attn = Attention(
            **{k: get(p + "attn." + k) for k in ("bq", "bk", "bv", "bo")},
            wq=need(p + "attn.wq"),
            wk=need(p + "attn.wk"),
            wv=need(p + "attn.wv"),
            wo=need(p + "attn.wo"),
        )
        mlp = MLP(
            w_up=need(p + "mlp.w_up"),
            w_down=need(p + "mlp.w_down"),
            w_gate=get(p + "mlp.w_gate"),
            b_up=get(p + "mlp.b_up"),
            b_down=get(p + "mlp.b_down"),
        )
        an, mn = norm(p + "attn_norm"), norm(p + "mlp_norm")
        assert an is not None and mn is not None
        layers.append(Layer(attn=attn, mlp=mlp, attn_norm=an, mlp_norm=mn))
    return ModelWeights(
        layers=layers,
        tok_embeddings=get("tok_embeddings"),
        pos_embeddings=get("pos_embeddings"),
        type_embeddings=get("type_embeddings"),
        embed_norm=norm("embed_norm"),
        final_norm=norm("final_norm"),
        lm_head=get("lm_head"),
        rope_inv_freq=get("rope_inv_freq"),
        rope_scaling=float(meta["rope_scaling"]),  # type: ignore[arg-type]
        first_layer=int(meta["first_layer"]),  # type: ignore[call-overload]
    )
