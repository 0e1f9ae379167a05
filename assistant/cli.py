"""The `galaxy` command line (DESIGN.md section 5).

Other distributions add commands through the entry-point group `galaxy.commands`
(`assistant/plugins.py`): the benchmark's `galaxy bench` comes from galaxy-bench this way, so
the product never imports it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from assistant import owner_cli, plugins

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a home has no model hub: fail fast, never wait

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Galaxy Home: Transformer inference split across the home's own devices.",
)


owner_cli.register(app)  # pair, tokens, backup, restore


class StrategyOpt(StrEnum):
    hmp = "hmp"
    tp = "tp"
    sp = "sp"
    pp = "pp"
    local = "local"


class TransportOpt(StrEnum):
    inproc = "inproc"
    tcp = "tcp"


class DecodeOpt(StrEnum):
    tp = "tp"
    local = "local"


class LossyWireOpt(StrEnum):
    off = "off"
    fp16 = "fp16"
    int8 = "int8"


class WireOpt(StrEnum):
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"
    int8 = "int8"


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command()
def verify(
    model: Annotated[
        str, typer.Option(help="alias (minilm, smollm2-135m, *-shape), HF id or path")
    ],
    devices: Annotated[int, typer.Option(min=1, help="number of in-process devices")] = 1,
    split: Annotated[str, typer.Option(help="even | uneven (1,2,3,...) | weights a,b,c")] = "even",
    strategy: Annotated[StrategyOpt, typer.Option(help="parallel strategy")] = StrategyOpt.hmp,
    transport: Annotated[TransportOpt, typer.Option(help="how ranks talk")] = TransportOpt.inproc,
    seq_len: Annotated[int | None, typer.Option(min=1, help="prompt length in tokens")] = None,
    decode: Annotated[DecodeOpt, typer.Option(help="decode steps: tp, or local")] = DecodeOpt.tp,
    wire: Annotated[
        WireOpt,
        typer.Option(help="activations on the wire; fp16, bf16 and int8 (row-scaled) are lossy"),
    ] = WireOpt.fp32,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run MODEL under a parallel plan and compare with the single-device Hugging Face model."""
    _setup_logging(verbose)
    from assistant.cluster.verify import verify as run_verify
    from edge_worker.errors import GalaxyError

    try:
        result = run_verify(
            model,
            devices=devices,
            split=split,
            strategy=strategy.value,
            transport=transport.value,
            seq_len=seq_len,
            decode=decode.value,
            wire=wire.value,
        )
    except GalaxyError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(result.to_json()))
    else:
        verdict = "PASS" if result.passed else "FAIL"
        typer.echo(
            f"{verdict} {result.model} {result.strategy} on {result.devices} device(s), "
            f"split {result.split}, {result.wire} wire, {result.seq_len} tokens: max |err| "
            f"{result.max_abs_err:.3g} (tolerance {result.tolerance:.3g}, output scale "
            f"{result.ref_scale:.3g})"
        )
        if result.tokens_match is not None:
            typer.echo(f"  generated tokens identical to transformers: {result.tokens_match}")
        if result.tie:
            typer.echo(f"  tie in the reference at step {result.tie['position']}: {result.tie}")
    raise typer.Exit(0 if result.passed else 1)


@app.command()
def worker(
    gateway: Annotated[
        str | None,
        typer.Option(
            envvar="GALAXY_GATEWAY",
            help="gateway API http://host:port (default: found by mDNS); a coordinator's "
            "ws://... only with --development",
        ),
    ] = None,
    name: Annotated[
        str, typer.Option(envvar="GALAXY_WORKER_NAME", help="this device's name (a-z, 0-9, -)")
    ] = "",
    data_dir: Annotated[
        Path, typer.Option(envvar="GALAXY_WORKER_DATA_DIR", help="credentials and cached shards")
    ] = Path("~/.local/share/galaxy-home/worker"),
    pairing_code: Annotated[
        str | None,
        typer.Option(
            envvar=["GALAXY_PAIRING_CODE", "PAIRING_CODE"],
            help="one-time code from the gateway (else: owner approval); unused once paired",
        ),
    ] = None,
    data_host: Annotated[
        str,
        typer.Option(
            envvar="GALAXY_DATA_HOST",
            help="address peers reach the data plane on (auto: this device's address on the "
            "route to the gateway)",
        ),
    ] = "127.0.0.1",
    data_port: Annotated[
        int, typer.Option(envvar="GALAXY_DATA_PORT", help="data-plane TCP port (0: any free)")
    ] = 0,
    threads: Annotated[
        int, typer.Option(envvar="GALAXY_THREADS", min=1, help="torch threads for compute")
    ] = 1,
    speed: Annotated[
        float,
        typer.Option(
            min=0.01,
            max=1.0,
            help="below 1 only with --development: emulate a slower device by sleeping",
        ),
    ] = 1.0,
    max_deployments: Annotated[
        int, typer.Option(min=1, help="plans (shards and rings) kept in memory at once")
    ] = 12,
    shard_cache: Annotated[int, typer.Option(min=1, help="shards kept on disk")] = 16,
    shard_cache_mb: Annotated[
        float,
        typer.Option(
            envvar="GALAXY_SHARD_CACHE_MB",
            min=0,
            help="disk the shard cache may take (MB); the newest shard is kept whatever its size",
        ),
    ] = 4096.0,
    reserve_mb: Annotated[
        float,
        typer.Option(
            envvar="GALAXY_RESERVE_MB", min=0, help="memory kept back for the device's own use (MB)"
        ),
    ] = 512.0,
    mdns: Annotated[
        str,
        typer.Option(
            envvar="GALAXY_MDNS_INTERFACES",
            help="mDNS interfaces: addresses (127.0.0.1, the default) or all; a list as "
            'GALAXY_MDNS_INTERFACES gives it to the gateway (["all"]) is read too',
        ),
    ] = "127.0.0.1",
    ca_fingerprint: Annotated[
        str | None,
        typer.Option(
            envvar="GALAXY_CA_FINGERPRINT",
            help="expected home CA fingerprint (shown by galaxy pair)",
        ),
    ] = None,
    development: Annotated[
        bool,
        typer.Option(
            "--development",
            help="for galaxy verify and galaxy bench only: accept an unauthenticated ws:// "
            "coordinator (no pairing, no TLS), --speed below 1 (sleep emulation), and send "
            "this process's and compute thread's ids (for CPU quotas)",
        ),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run an edge worker: pair once, then take shards, join rings and execute plans."""
    _setup_logging(True)
    if not verbose:
        logging.getLogger("websockets").setLevel(logging.WARNING)
    import asyncio
    import signal
    import socket

    from edge_worker.errors import GalaxyError
    from edge_worker.service.run import run_worker
    from edge_worker.service.worker import Worker

    device = name or socket.gethostname().lower()
    directory = data_dir.expanduser()
    try:  # the development-only options are refused here, with the reason
        w = Worker(
            device,
            directory,
            data_host,
            data_port,
            threads,
            speed=speed,
            max_deployments=max_deployments,
            shard_cache=shard_cache,
            shard_cache_mb=shard_cache_mb,
            reserve_mb=reserve_mb,
            development=development,
        )
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    # `docker stop` sends SIGTERM: stop as on Ctrl-C, closing the links and sending mDNS goodbyes.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        asyncio.run(
            run_worker(w, gateway, directory, pairing_code, _interfaces(mdns), ca_fingerprint)
        )
    except KeyboardInterrupt:
        # The links are closed, the goodbyes sent and received shards saved; a compute job
        # still running (a profile takes seconds) is of no use now: do not wait for it.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    except (GalaxyError, TimeoutError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        typer.echo(f"error: cannot reach the coordinator at {gateway}: {exc}", err=True)
        raise typer.Exit(2) from None


def _interfaces(value: str) -> list[str]:
    """mDNS interfaces from `--mdns`: "a,b" as typed, or a JSON list as the gateway's
    GALAXY_MDNS_INTERFACES takes it, so one .env file serves both roles."""
    if value.strip().startswith("["):
        try:
            items = json.loads(value)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"--mdns {value!r} is not a JSON list: {exc}") from None
        return [str(i) for i in items]
    return value.split(",")


@app.command()
def gateway(
    host: Annotated[
        str | None, typer.Option(help="HTTP API address [default: GALAXY_HOST or 127.0.0.1]")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="HTTP API port [default: GALAXY_PORT or 8000]")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="CA, database, state [default: GALAXY_DATA_DIR]")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the gateway: HTTP API, worker endpoint, discovery. Every setting is a GALAXY_*
    environment variable (README); a flag given here wins over its variable."""
    _setup_logging(True)
    if not verbose:
        logging.getLogger("websockets").setLevel(logging.WARNING)
    import uvicorn

    from assistant.config import Settings
    from assistant.main import create_app

    given = {"host": host, "port": port, "data_dir": data_dir}
    settings = Settings(**{k: v for k, v in given.items() if v is not None})  # type: ignore[arg-type]
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        ws_per_message_deflate=False,
        log_level="info" if verbose else "warning",
    )


@app.command()
def plan(
    model: Annotated[str, typer.Option(help="alias, HF id or path")],
    devices: Annotated[Path, typer.Option(help="device profile file (JSON)")],
    seq_len: Annotated[int, typer.Option(min=1, help="prompt length in tokens")] = 512,
    decode_tokens: Annotated[int, typer.Option(min=0, help="tokens to generate after")] = 0,
    lossy_wire: Annotated[
        LossyWireOpt, typer.Option(help="most lossy wire format to cost (errors: DESIGN.md 6)")
    ] = LossyWireOpt.off,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Choose the fastest plan for MODEL on the devices in FILE, and say why."""
    _setup_logging(False)
    from assistant.cluster.models import model_config
    from assistant.planner.explain import explain
    from assistant.planner.planner import choose
    from assistant.planner.profiles import load_home
    from edge_worker.errors import GalaxyError

    try:
        home = load_home(devices)
        cfg = model_config(model)
        choice = choose(
            cfg, home, seq_len, decode_tokens=decode_tokens, lossy_wire=lossy_wire.value
        )
    except GalaxyError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(choice.to_json(model, seq_len)))
    else:
        typer.echo(explain(choice, model, seq_len))


@app.command()
def demo(
    workers: Annotated[int, typer.Option(min=1, max=8, help="worker processes to start")] = 2,
    port: Annotated[int, typer.Option(help="HTTP API port")] = 8000,
    question: Annotated[str, typer.Option(help="what to ask the assistant")] = (
        "Give me three tips to save energy at home."
    ),
    max_tokens: Annotated[int, typer.Option(min=1, max=256)] = 48,
    serve: Annotated[bool, typer.Option(help="keep serving after the example request")] = True,
) -> None:
    """Start the gateway and N paired workers here, ask one question, then keep serving."""
    _setup_logging(False)
    import signal

    from assistant.demo import run_demo
    from edge_worker.errors import GalaxyError

    # `kill` or a service manager sends SIGTERM: stop as on Ctrl-C, so the workers started
    # here stop with the gateway instead of retrying it forever as orphans.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        run_demo(workers, port, question, max_tokens, typer.echo, serve=serve)
    except (GalaxyError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


plugins.add_commands(app)


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())


if __name__ == "__main__":
    main()
