"""`galaxy bench`: run settings and the transport comparison, write JSON and tables.

Every table title ends with the emulation that actually ran (`Home.label`: e.g. "netns tbf
links, cgroup thread quotas", or "loopback links (not shaped), SLEEP emulation (not a real
CPU cap); FALLBACK: ..."), and the JSON's "emulation" key carries the same `label`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from galaxy_bench import report, settings
from galaxy_bench.emulation import CpuMode, Home, LinkMode, describe_in_words
from galaxy_bench.runner import run_setting

log = logging.getLogger(__name__)


def choose_emulation(links: str, cpu: str) -> tuple[LinkMode, CpuMode]:
    """Resolve "auto" to the best emulation: namespaces with shaped links, and cgroup quotas
    on compute threads. Where this machine lacks them (they need root), the Home falls back
    to loopback links and sleep emulation, records why, and says FALLBACK in its label."""
    return (
        cast(LinkMode, "netns" if links == "auto" else links),
        cast(CpuMode, "thread" if cpu == "auto" else cpu),
    )


def run(
    chosen: list[settings.Setting],
    reps: int,
    links: str,
    cpu: str,
    out: Path | None,
    transport_sizes: tuple[int, ...] | None,
    echo: Callable[[str], None],
    cpu_slice_us: int | None = None,
    ballast: bool = False,
) -> dict[str, Any]:
    links, cpu = choose_emulation(links, cpu)
    echo(
        f"emulation asked for: {describe_in_words(links, cpu)} (each table title names what "
        f"ran); {len(chosen)} setting(s), {reps} reps each"
    )
    runs: list[dict[str, Any]] = []
    emulation: dict[str, Any] = {}
    tables, summaries = [], []
    for s in chosen:
        echo(f"\n{s.title}")
        rows, emulation = run_setting(
            s, reps, links, cpu, progress=echo, cpu_slice_us=cpu_slice_us, ballast=ballast
        )
        if emulation["fallback_reasons"]:
            echo(f"WARNING: this setting ran with {emulation['label']}")
        report.annotate(rows)
        runs += rows
        tables.append(report.table(f"{s.title}; {emulation['label']}", rows))
        summaries.append({**report.summary(s.title, rows), "emulation": emulation["label"]})
        echo("\n" + tables[-1])
        _write(out, _result(emulation, runs, summaries, [], tables))  # a later crash keeps this
    if any(s.get("planned") for s in summaries):
        tables.append(report.planner_table(summaries))
        echo("\n" + tables[-1])
    transport: list[dict[str, Any]] = []
    if transport_sizes:
        from galaxy_bench.transport import run_transport_bench

        bw = chosen[0].devices[0].bandwidth_mbps
        echo(f"\ntransport: our ring vs gloo at {bw:g} Mbit/s, {transport_sizes} MB per rank")
        with Home(list(chosen[0].devices), links=links, cpu="none") as home:
            transport = run_transport_bench(home, sizes_mb=transport_sizes, reps=max(3, reps))
            label = home.label
        tables.append(transport_table(transport, label))
        echo("\n" + tables[-1])
    result = _result(emulation, runs, summaries, transport, tables)
    if out is not None:
        _write(out, result)
        echo(f"\nwrote {out}")
    return result


def _result(
    emulation: dict[str, Any],
    runs: list[dict[str, Any]],
    summaries: list[dict[str, Any]],
    transport: list[dict[str, Any]],
    tables: list[str],
) -> dict[str, Any]:
    return {
        "command": shlex.join(["galaxy", *sys.argv[1:]]) if sys.argv else "galaxy bench",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": report.machine(),
        "emulation": emulation,
        "runs": runs,
        "summaries": summaries,
        "transport": transport,
        "tables": tables,
    }


def _write(out: Path | None, result: dict[str, Any]) -> None:
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))


def transport_table(rows: list[dict[str, Any]], emulation: str) -> str:
    """Ring against gloo per op and size; `emulation` (the links, in words) ends the title."""
    lines = [
        "**transport: all-gather / reduce-scatter, median ms (algorithm bandwidth MB/s); "
        f"{emulation}**",
        "",
        "| op | MB per rank | ring | gloo |",
        "|---|---|---|---|",
    ]
    keyed = {(r["op"], r["mb_per_rank"], r["transport"]): r for r in rows}
    for op, mb in sorted({(r["op"], r["mb_per_rank"]) for r in rows}):
        cells = []
        for t in ("ring", "gloo"):
            r = keyed.get((op, mb, t))
            cells.append(f"{r['latency_ms_median']:.1f} ({r['algbw_MBps']:.0f})" if r else "n/a")
        lines.append(f"| {op} | {mb:g} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)
