"""A plan told in words, for `galaxy plan` and the dashboard."""

from __future__ import annotations

from assistant.planner.planner import WIRE_ERROR, Choice
from edge_worker.spec.plan import wire_bytes


def explain(choice: Choice, model: str, seq_len: int) -> str:
    p, b = choice.plan, choice.predicted
    names = [d.name for d in choice.ring]
    lines = [
        f"{model}, {seq_len} tokens: {choice.label} on {', '.join(names)} "
        f"(predicted {b.total_ms:.0f} ms: compute {b.compute_ms:.0f}, communication "
        f"{b.comm_ms:.0f}, idle {b.idle_ms:.0f})"
    ]
    if p.heads:
        lines.append(f"  heads per device:       {list(p.heads)}")
        lines.append(f"  MLP columns per device: {list(p.mlp_columns)}")
    if p.strategy in ("sp", "hmp"):
        lines.append(f"  tokens per device:      {p.seq_split(seq_len)}")
    if p.layers:
        lines.append(f"  layers per device:      {list(p.layers)}")
    lines.append(f"  memory per device (MB): {[round(m) for m in choice.memory_mb]}")
    if p.wire_dtype != "float32":
        row = 1024  # bytes a value, over a long row (int8 adds a scale per tile)
        moved, summed = (wire_bytes(p.wire_dtype, row, s) / row for s in (False, True))
        lines.append(
            f"  wire: {p.wire_dtype} activations, {moved:g} bytes a value gathered and "
            f"{summed:g} summed (fp32: 4); numerical cost: max error "
            f"{WIRE_ERROR[p.wire_dtype]:.1e} of the output's scale (fp32 wire: 5.8e-6)"
        )
    if choice.decode_ms is not None:
        where = "on " + names[-1] + " alone" if p.decode == "local" else "tensor-parallel"
        if choice.handoff_ms:
            where += f" (the prefill ends handing it the K/V cache: {choice.handoff_ms:.0f} ms)"
        lines.append(f"  decode: {where}, predicted {choice.decode_ms:.1f} ms per token")
    mine = choice.alternatives[choice.label]
    others = [(k, v) for k, v in choice.alternatives.items() if k != choice.label]
    if others:
        what = "prefill + decode" if choice.decode_ms is not None else "prefill"
        lines.append(f"  alternatives, {what} on the best device subset for each:")
        lines.append(f"    {choice.label:<18} {mine:9.0f} ms (chosen)")
        lines += [f"    {k:<18} {v:9.0f} ms ({v / mine:.2f}x slower)" for k, v in others]
    for name, reason in choice.excluded:
        lines.append(f"  left out {name}: {reason}")
    return "\n".join(lines)
