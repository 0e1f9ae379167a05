"""What `galaxy bench` measures: the emulated homes, models and strategy variants.

The reference home (issue 3): three devices at 50% / 25% / 15% of one core (compute-thread
quotas), 1000 Mbit/s links, bert-large-shape, sequence 512, 24 layers, fp32 on the wire. Every
ring runs the product's mutual TLS (ring_tls.py) but `hmp+overlap plain`, the cost-of-TLS baseline.
Long prompts (issue 16): `smollm2-1024` and `smollm2-2048`, the packaged SmolLM2-135M in the
reference home with a 1024- or 2048-token prompt and 32 decode steps, judged on time to first
token and decode tokens/s.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from edge_worker.spec.plan import Strategy, WireDtype
from galaxy_bench.emulation import DeviceSpec


@dataclass(frozen=True)
class Variant:
    """One column of the comparison: a strategy and its options."""

    label: str
    strategy: Strategy
    overlap: bool = False
    wire_dtype: WireDtype = "float32"
    split: Literal["even", "speed"] = "even"  # speed: shares in proportion to measured GFLOP/s
    even_rows: bool = False  # hmp's connective rows (the ring's chunks) even, whatever `split`
    every_device: bool = False  # tp/hmp on every device even past the model's K/V groups
    planned: bool = False  # the planner chooses strategy, devices and shares (issue 4)
    # planned again after the warm-up round, on what the traces of variant `learns_from`
    # there taught the planner as they teach the gateway (assistant/cluster/learning.py):
    # device speeds (planner/speed.py), or each device's overlap cost when that variant
    # overlapped (planner/calibrate.py); by the whole planner when `planned`, else by the
    # planner kept to this variant's strategy; comes after `learns_from` in a setting
    learned: bool = False
    learns_from: str = ""
    plain_ring: bool = False  # the ring without TLS (every other variant encrypts it)


LOCAL = Variant("local", "local")
TP = Variant("tp", "tp")
SP = Variant("sp", "sp")
PP = Variant("pp", "pp")
HMP = Variant("hmp", "hmp", split="speed")
HMP_OVERLAP = Variant("hmp+overlap", "hmp", overlap=True, split="speed")
HMP_FP16 = Variant("hmp fp16", "hmp", wire_dtype="float16", split="speed")
HMP_OVERLAP_FP16 = Variant(
    "hmp+overlap fp16", "hmp", overlap=True, wire_dtype="float16", split="speed"
)
TP_FP16 = Variant("tp fp16", "tp", wire_dtype="float16")
# int8 gathers (a scale per 32 values) and fp16 partial sums: engine/wire.py
HMP_OVERLAP_INT8 = Variant(
    "hmp+overlap int8", "hmp", overlap=True, wire_dtype="int8", split="speed"
)
# Heads and columns by speed, the connective blocks' rows (the ring's chunks) even: the ring's
# step takes as long as its largest chunk, and the connective work is small.
HMP_EVEN_ROWS = Variant("hmp even rows", "hmp", split="speed", even_rows=True)
HMP_OVERLAP_EVEN_ROWS = Variant(
    "hmp+overlap even rows", "hmp", overlap=True, split="speed", even_rows=True
)
# A GQA model with fewer K/V groups than devices (qwen2.5-0.5b has 2): the fixed tp and hmp
# variants run on as many devices as groups; these run on all, a group's K/V projection
# replicated where two devices share it (issue 16, item 6), or sp with rows by speed.
HMP_EVERY_DEVICE = Variant("hmp all devices", "hmp", split="speed", every_device=True)
SP_BY_SPEED = Variant("sp by speed", "sp", split="speed")
PLANNED = Variant("planned", "hmp", planned=True)
LEARNED = Variant("planned, learned", "hmp", planned=True, learned=True, learns_from="planned")
# hmp+overlap as the gateway would plan it once it has learned each device's overlap cost
# from hmp+overlap's own warm-up: shares balanced on the cost model (planner/balance.py)
HMP_OVERLAP_LEARNED = Variant(
    "hmp+overlap, learned", "hmp", overlap=True, learned=True, learns_from="hmp+overlap"
)
# The cost of TLS: the product's ring always encrypts; this one does not (ring_tls.py).
HMP_OVERLAP_PLAIN = Variant(
    "hmp+overlap plain", "hmp", overlap=True, split="speed", plain_ring=True
)

ALL_VARIANTS = (
    LOCAL,
    TP,
    SP,
    PP,
    HMP,
    HMP_OVERLAP,
    HMP_OVERLAP_LEARNED,
    HMP_OVERLAP_PLAIN,
    HMP_EVEN_ROWS,
    HMP_OVERLAP_EVEN_ROWS,
    TP_FP16,
    HMP_FP16,
    HMP_OVERLAP_FP16,
    PLANNED,
    LEARNED,
)


@dataclass(frozen=True)
class Setting:
    model: str
    seq_len: int
    devices: tuple[DeviceSpec, ...]
    variants: tuple[Variant, ...] = ALL_VARIANTS
    num_layers: int | None = None  # None: the model's own depth
    decode_tokens: int = 0  # > 0: also time this many decode steps after the prefill

    @property
    def title(self) -> str:
        links = sorted({d.bandwidth_mbps for d in self.devices})
        layers = f", {self.num_layers} layers" if self.num_layers else ""
        decode = f" + {self.decode_tokens} decode" if self.decode_tokens else ""
        return (
            f"{self.model} seq {self.seq_len}{decode}{layers}, {len(self.devices)} devices at "
            + "/".join(f"{d.speed:.0%}" for d in self.devices)
            + f" of a core, {'/'.join(f'{b:g}' for b in links)} Mbit/s"
        )


def home(bandwidth: float, speeds: tuple[float, ...] = (0.5, 0.25, 0.15)) -> tuple[DeviceSpec, ...]:
    names = ("desk-pc", "laptop", "kitchen-pi", "tv-box", "nas", "tablet", "hub", "speaker")
    return tuple(DeviceSpec(names[i], s, bandwidth) for i, s in enumerate(speeds))


REFERENCE = Setting("bert-large-shape", 512, home(1000))


def named() -> dict[str, Setting]:
    """Every setting of the benchmark by name (`galaxy bench --setting NAME`)."""
    # pp runs 2.3x slower than local in the reference home (bench/RESULTS.md); the other
    # models' settings leave it out to keep the run short.
    basic = (LOCAL, TP, SP, HMP, HMP_OVERLAP, PLANNED)
    # issue 16: time to first token; sp by speed is the planner's plan before its rows were
    # balanced by the cost model (assistant/planner/rows.py)
    long_prompt = (LOCAL, TP, HMP, HMP_OVERLAP, SP_BY_SPEED, PLANNED, LEARNED)
    links = (
        LOCAL,
        TP,
        SP,
        HMP,
        HMP_OVERLAP,
        HMP_OVERLAP_LEARNED,
        HMP_OVERLAP_FP16,
        HMP_OVERLAP_INT8,
        PLANNED,
        LEARNED,
    )
    return {
        "reference": REFERENCE,
        "bert-seq256": replace(REFERENCE, seq_len=256),
        "bert-500mbit": replace(REFERENCE, devices=home(500), variants=links),
        "bert-100mbit": replace(REFERENCE, devices=home(100), variants=links),
        "gpt2-large": Setting("gpt2-large-shape", 512, home(1000), variants=basic),
        "qwen2.5-0.5b": Setting(
            "qwen2.5-0.5b-shape",
            512,
            home(1000),
            variants=(*basic, LEARNED, HMP_EVERY_DEVICE, SP_BY_SPEED),
        ),
        "smollm2-decode": Setting(
            "smollm2-135m", 512, home(1000), variants=basic, decode_tokens=32
        ),
        "smollm2-1024": Setting(
            "smollm2-135m", 1024, home(1000), variants=long_prompt, decode_tokens=32
        ),
        "smollm2-2048": Setting(
            "smollm2-135m", 2048, home(1000), variants=long_prompt, decode_tokens=32
        ),
    }


def full() -> list[Setting]:
    """Every setting of the benchmark (a long run: an hour or more)."""
    return list(named().values())


def quick() -> list[Setting]:
    """A smoke-sized run (well under 3 minutes): small model, few variants."""
    return [
        Setting(
            "bert-large-shape",
            128,
            home(1000),
            num_layers=2,
            variants=(
                LOCAL,
                TP,
                HMP,
                HMP_OVERLAP,
                HMP_OVERLAP_LEARNED,
                HMP_OVERLAP_PLAIN,
                PLANNED,
                LEARNED,
            ),
        )
    ]
