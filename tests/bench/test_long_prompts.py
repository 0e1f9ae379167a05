"""Issue 16's long-prompt settings: what they run and how their tables report them."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch

from edge_worker.engine.generate import SamplingParams, generate
from galaxy_bench.report import summary, table
from galaxy_bench.runner import _FirstToken
from galaxy_bench.settings import named


def test_long_prompt_settings_are_smollm2_in_the_reference_home() -> None:
    settings = named()
    for name, seq in (("smollm2-1024", 1024), ("smollm2-2048", 2048)):
        s = settings[name]
        assert (s.model, s.seq_len, s.decode_tokens) == ("smollm2-135m", seq, 32)
        assert [d.speed for d in s.devices] == [0.5, 0.25, 0.15]
        assert {d.bandwidth_mbps for d in s.devices} == {1000}
        assert [v.label for v in s.variants] == [
            "local",
            "tp",
            "hmp",
            "hmp+overlap",
            "sp by speed",
            "planned",
            "planned, learned",
        ]


def row(label: str, ttft: float, ms_per_token: float, **extra: Any) -> dict[str, Any]:
    return {
        "label": label,
        "latency_ms_median": ttft,
        "ttft_ms_median": ttft,
        "decode_tokens": 32,
        "decode_ms_per_token_median": ms_per_token,
        "decode_tokens_per_s": 1e3 / ms_per_token,
        "predicted_ms": ttft,
        "predicted_decode_ms": ms_per_token,
        "compute_ms": ttft * 0.8,
        "comm_ms": 0.0,
        "wire_dtype": "float32",
        "overlap": False,
        "plan": {"strategy": label},
        "ranks": ["a"],
        "devices": [{"name": "a", "bandwidth_mbps": 1000}],
        "peak_mem_mb": [1.0],
        **extra,
    }


def test_time_to_first_token_and_decode_rate_against_local() -> None:
    runs = [
        row("local", 3000, 200),
        row("hmp", 2000, 400),
        row("planned", 2000, 160, planner_chose="hmp prefill, decode alone"),
    ]

    s = summary("home", runs)
    text = table("home; emulation", runs)

    assert s["planned_ttft_speedup"] == 1.5
    assert s["planned_decode_vs_local"] == 200 / 160
    header = text.splitlines()[2]
    assert "TTFT ms" in header and "decode tok/s" in header and "decode x local" in header
    hmp_line = next(line for line in text.splitlines() if line.startswith("| hmp |"))
    assert "| 2.50 | 0.50 |" in hmp_line  # 2.5 tokens/s, half local's rate
    assert "time to first token 1.50x faster than local; decode 1.25x" in text


def test_timed_prefill_keeps_the_prefills_results_not_the_last_decode_steps() -> None:
    class Cluster:
        def __init__(self) -> None:
            self.last: list[Any] = []

        def prefill_last_logits(self, ids: torch.Tensor) -> torch.Tensor:
            self.last = [SimpleNamespace(result="prefill")]
            return torch.zeros(1, 5)

        def decode(self, ids: torch.Tensor) -> torch.Tensor:
            self.last = [SimpleNamespace(result="decode")]
            return torch.zeros(1, 5)

    runner = _FirstToken(Cluster())  # type: ignore[arg-type]
    gen = generate(runner, [1, 2, 3], SamplingParams(4, stop_ids=frozenset()))

    assert len(gen.decode_ms) == 3
    assert runner.prefill_results == ["prefill"]
