"""The voice bench's numbers and its markdown table (for bench/RESULTS.md)."""

from __future__ import annotations

import re
import statistics
from typing import Any


def words(text: str) -> list[str]:
    text = text.lower().replace("%", " percent")
    return re.sub(r"[^a-z0-9' ]", " ", text).split()


def word_errors(said: str, heard: str) -> tuple[int, int]:
    """(edits, words said): the Levenshtein distance between the word lists."""
    a, b = words(said), words(heard)
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1], len(a)


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    q = statistics.quantiles(values, n=20, method="inclusive") if len(values) > 1 else values * 19
    return {
        "n": len(values),
        "p50": round(statistics.median(values), 1),
        "p90": round(q[17], 1),
        "p95": round(q[18], 1),
        "max": round(max(values), 1),
    }


def _wer(turns: list[dict[str, Any]]) -> float:
    edits = sum(t["errors"][0] for t in turns)
    said = sum(t["errors"][1] for t in turns)
    return edits / max(1, said)


def report(result: dict[str, Any]) -> str:
    turns = result["commands"]
    lines = [f"Voice turn, {result['setting']}", ""]
    ok = sum(t["correct"] for t in turns)
    lines.append(f"- commands understood: {ok}/{len(turns)} ({ok / len(turns):.1%})")
    for source in ("templates", "classifier", "conversation", None):
        group = [t for t in turns if t["source"] == source]
        if group:
            right = sum(t["correct"] for t in group)
            lines.append(
                f"  - recognised by {source or 'nothing (empty transcript)'}: "
                f"{right}/{len(group)} right"
            )
    lines.append(
        f"- word error rate: {_wer(turns):.1%} on commands, "
        f"{_wer(result['questions']):.1%} on questions"
    )
    wrong = [t for t in turns if not t["correct"]]
    for t in wrong:
        got = (t["intent"] or {}).get("name")
        lines.append(f"  - missed: {t['text']!r} heard as {t['transcript']!r} -> {got}")
    lines += ["", "| ms | n | p50 | p90 | p95 | max |", "|---|---|---|---|---|---|"]
    devices = [t for t in turns if t["source"] in ("templates", "classifier")]
    rows: dict[str, dict[str, float]] = {}
    for stage in ("stt_ms", "intent_ms", "cluster_ms", "tts_ms"):
        rows[f"device commands: {stage}"] = percentiles([t["timings"][stage] for t in devices])
    rows["device commands: end of audio to reply audio"] = percentiles(
        [t["end_to_end_ms"] for t in devices]
    )
    rows["stream: end of audio to first reply audio"] = result["stream_first_audio_ms"]
    rows["questions (SmolLM2): end to end"] = percentiles(
        [t["end_to_end_ms"] for t in result["questions"]]
    )
    rows["on/off commands, idle"] = result["commands_idle_ms"]
    rows["on/off commands, during a 200-token generation"] = result["commands_during_generation_ms"]
    for name, p in rows.items():
        if p:
            lines.append(
                f"| {name} | {p['n']} | {p['p50']} | {p['p90']} | {p['p95']} | {p['max']} |"
            )
    idle, busy = result["commands_idle_ms"], result["commands_during_generation_ms"]
    if idle and busy:
        lines.append(f"\nduring / idle (median): {busy['p50'] / idle['p50']:.2f}x")
    return "\n".join(lines)
