"""Small engine configs for tests that need no weights."""

from edge_worker.spec.config import ModelConfig


def mha_config() -> ModelConfig:
    return ModelConfig(
        family="gpt2",
        vocab_size=96,
        hidden_size=48,
        n_layers=4,
        n_heads=12,
        n_kv_heads=12,
        intermediate_size=40,
        max_positions=64,
        activation="gelu_tanh",
        norm="layernorm",
        norm_eps=1e-5,
        norm_placement="pre",
        causal=True,
        lm_head=True,
    )


def gqa_config() -> ModelConfig:
    return ModelConfig(
        family="llama",
        vocab_size=96,
        hidden_size=48,
        n_layers=4,
        n_heads=12,
        n_kv_heads=4,
        intermediate_size=40,
        max_positions=64,
        activation="silu",
        norm="rmsnorm",
        norm_eps=1e-5,
        norm_placement="pre",
        causal=True,
        positions="rope",
        gated_mlp=True,
        qkv_bias=False,
        out_bias=False,
        mlp_bias=False,
        lm_head=True,
    )
