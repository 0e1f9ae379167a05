"""The values the gateway and the workers share: what a model computes (`ModelConfig`, read from
a Hugging Face config by `hf_config`), how it is split (`ParallelPlan` and the share
arithmetic) and what its pieces cost (`flops`). Pure Python: no torch, no web stack. The gateway
may import these anywhere; the engine itself only from `assistant/cluster` (DESIGN.md, 1b)."""
