"""`galaxy bench`: a plugin command of the product's `galaxy` CLI.

bench/pyproject.toml declares it in the entry-point group `galaxy.commands`
(`bench = "galaxy_bench.cli:bench"`); `assistant/cli.py` registers every command of that
group. This module stays cheap to import (`galaxy --help` loads it): the benchmark itself is
imported only when the command runs.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["CpuOpt", "LinksOpt", "bench"]


class LinksOpt(StrEnum):
    auto = "auto"
    netns = "netns"
    loopback = "loopback"


class CpuOpt(StrEnum):
    auto = "auto"
    thread = "thread"
    process = "process"
    sleep = "sleep"
    none = "none"


def bench(
    quick: Annotated[bool, typer.Option("--quick", help="a small smoke run (< 3 minutes)")] = False,
    voice: Annotated[
        bool,
        typer.Option(
            "--voice",
            help="the spoken voice turn: intent accuracy, word error rate, stage latencies",
        ),
    ] = False,
    soak: Annotated[
        bool,
        typer.Option(
            "--soak",
            help="faults survived: requests while a worker is killed (SIGKILL) and restarted "
            "every 20 s; counts and latency calm vs during faults",
        ),
    ] = False,
    soak_requests: Annotated[
        int, typer.Option(min=1, help="--soak: requests to send (at least one kill happens)")
    ] = 300,
    reference: Annotated[
        bool, typer.Option("--reference", help="only the reference home, all strategies")
    ] = False,
    out: Annotated[Path | None, typer.Option(help="write the JSON results here")] = None,
    reps: Annotated[int | None, typer.Option(min=1, help="measured rounds per variant")] = None,
    links: Annotated[
        LinksOpt, typer.Option(help="link emulation (auto: netns, else loopback)")
    ] = LinksOpt.auto,
    throttle: Annotated[
        CpuOpt,
        typer.Option(
            help="CPU emulation: cgroup quota on the compute thread or whole process (auto: "
            "thread); sleep is a stand-in, not a real CPU cap"
        ),
    ] = CpuOpt.auto,
    cpu_slice_ms: Annotated[
        float | None,
        typer.Option(
            min=1.0,
            help="each device's CPU quota per period (period = slice / speed); default: 10 ms "
            "periods. Smaller slices leave a thread that waits less of a whole core to catch "
            "up with: 1 ms is the kernel's finest",
        ),
    ] = None,
    ballast: Annotated[
        bool,
        typer.Option(
            help="while a device's compute thread waits on the ring, a spinning process in its "
            "CPU group spends its quota, as time passes on a slow device (thread quotas only; "
            "without it a thread that waited computes at a whole core's speed until its "
            "period's quota is spent)",
        ),
    ] = False,
    transport: Annotated[bool, typer.Option(help="also compare our ring with gloo")] = True,
    setting: Annotated[
        list[str] | None,
        typer.Option(help="run only these settings (reference, bert-seq256, bert-500mbit, ...)"),
    ] = None,
    variant: Annotated[
        list[str] | None,
        typer.Option(
            help="run only these variants of each setting (local, hmp+overlap, ...), for a "
            "focused A/B; the report's ratios need local (and tp) among them"
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Measure every strategy side by side on real worker processes in an emulated home.

    Needs root (namespaces, CPU quotas); else loopback + SLEEP emulation, named in each title.
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if voice:
        from galaxy_bench.voice import run_voice

        run_voice(out, typer.echo, rounds=reps or 2)
        return
    if soak:
        from galaxy_bench.soak import run_soak

        result = run_soak(out, typer.echo, requests=soak_requests)
        if not all(result["acceptance"].values()):
            raise typer.Exit(1)
        return
    from galaxy_bench import settings, suite

    sizes: tuple[int, ...]
    if quick:
        chosen, n, sizes = settings.quick(), reps or 2, (1,)
    elif reference:
        chosen, n, sizes = [settings.REFERENCE], reps or 5, (1, 2, 4, 8)
    elif setting:
        table = settings.named()
        unknown = [s for s in setting if s not in table]
        if unknown:
            typer.echo(f"error: unknown setting {unknown}; choose from {list(table)}", err=True)
            raise typer.Exit(2)
        chosen, n, sizes = [table[s] for s in setting], reps or 3, (1, 2, 4, 8)
    else:
        chosen, n, sizes = settings.full(), reps or 3, (1, 2, 4, 8)
    if variant:
        known = {v.label for st in chosen for v in st.variants}
        if unknown := [v for v in variant if v not in known]:
            typer.echo(f"error: unknown variant {unknown}; choose from {sorted(known)}", err=True)
            raise typer.Exit(2)
        chosen = [replace(st, variants=tuple(v for v in st.variants if v.label in variant))
                  for st in chosen]  # fmt: skip
        teachers = {v.learns_from for st in chosen for v in st.variants if v.learns_from}
        if untaught := sorted(teachers - set(variant)):
            typer.echo(f"error: learned variants learn from {untaught}: add them", err=True)
            raise typer.Exit(2)
    slice_us = round(cpu_slice_ms * 1000) if cpu_slice_ms is not None else None
    suite.run(
        chosen, n, links.value, throttle.value, out, sizes if transport else None, typer.echo,
        cpu_slice_us=slice_us, ballast=ballast,
    )  # fmt: skip
