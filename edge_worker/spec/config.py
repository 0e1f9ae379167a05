"""The engine's model description: one frozen dataclass for every supported family.

A config says *what* the network computes (sizes, norm placement, activation, positions); it
carries no weights and no parallel plan. `edge_worker.engine.loader` builds one from a Hugging
Face config; tests build small ones directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from edge_worker.errors import UnsupportedModel

Family = Literal["bert", "distilbert", "gpt2", "opt", "llama"]
Activation = Literal["gelu", "gelu_tanh", "relu", "silu"]
NormKind = Literal["layernorm", "rmsnorm"]

FAMILIES: tuple[Family, ...] = ("bert", "distilbert", "gpt2", "opt", "llama")


@dataclass(frozen=True)
class ModelConfig:
    """Sizes and structure of a Transformer stack.

    `norm_placement` is "post" for BERT-style encoders (residual add, then norm) and "pre" for
    GPT-2, OPT and Llama (norm, then sublayer, then residual add). `positions` is "absolute"
    (learned table, offset by `position_offset`, as OPT's 2) or "rope".
    """

    family: Family
    vocab_size: int
    hidden_size: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    intermediate_size: int
    max_positions: int
    activation: Activation
    norm: NormKind
    norm_eps: float
    norm_placement: Literal["pre", "post"]
    causal: bool
    positions: Literal["absolute", "rope"] = "absolute"
    position_offset: int = 0
    type_vocab_size: int = 0
    gated_mlp: bool = False
    qkv_bias: bool = True
    out_bias: bool = True
    mlp_bias: bool = True
    embed_norm: bool = False
    final_norm: bool = True
    lm_head: bool = False
    rope_theta: float = 10000.0
    head_dim: int = field(default=0)

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise UnsupportedModel(
                f"model family {self.family!r} is not supported; supported: {', '.join(FAMILIES)}"
            )
        if self.head_dim == 0:
            if self.hidden_size % self.n_heads:
                raise UnsupportedModel(
                    f"hidden size {self.hidden_size} is not a multiple of {self.n_heads} heads"
                )
            object.__setattr__(self, "head_dim", self.hidden_size // self.n_heads)
        if self.n_heads % self.n_kv_heads:
            raise UnsupportedModel(
                f"{self.n_heads} query heads cannot be grouped over {self.n_kv_heads} KV heads"
            )

    @property
    def group_size(self) -> int:
        """Query heads per key/value head (1 without grouped-query attention)."""
        return self.n_heads // self.n_kv_heads

    @property
    def is_decoder(self) -> bool:
        return self.causal

    def n_params(self) -> int:
        """Parameter count of the engine's view of the model (tied head counted once)."""
        h, f, hd = self.hidden_size, self.intermediate_size, self.head_dim
        attn = h * hd * (2 * self.n_heads + 2 * self.n_kv_heads)
        mlp = h * f * (3 if self.gated_mlp else 2)
        embed = self.vocab_size * h
        if self.positions == "absolute":
            embed += (self.max_positions + self.position_offset) * h
        return embed + self.n_layers * (attn + mlp)
