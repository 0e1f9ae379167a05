"""Control-plane messages between a coordinator (gateway) and an edge worker.

Text websocket frames carry one JSON message each, tagged by `type` and `version`; tensors
travel in binary frames (see `tensors.py`) right after the message that announces them:

    worker                                   coordinator
      Hello(name, data port, cached shards) ->
                                          <- Assign(plan, rank, peers, token, shard hash)
                                          <- tensor frames (unless the shard is cached)
      Loaded(plan_id)                      ->   (every rank's shard in place first...)
                                          <- Connect(plan_id)
      Ready(plan_id)                       ->   (...then the ring forms, within its deadline)
                                          <- Run(run_id, prefill|decode, ids)
      Result(run_id, trace) + tensor frames ->
                                          <- Profile(model, shapes)
      ProfileResult(GEMM blocks, attention, norm, decode) ->
                                          <- Probe(peers, token)  (a ring just to measure links)
      ProbeResult(latency, Mbit/s)         ->
      Error(code, text)                    ->   (any time; `run_id` when it answers a Run)
                                          <- Release(plan_id)  (the plan is no longer used)
                                          <- Shutdown

A worker keeps reading while a run computes (version 4): the coordinator may deploy a new plan,
tensor frames and all, beside the requests still running on the old one. A Result and its
tensor frames are sent back to back, with nothing between them.
"""

from __future__ import annotations

import statistics
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

VERSION = 6  # 2: deployments load every shard (Loaded) before the ring forms (Connect);
# 3: a profile result says how much CPU the worker's process may use (cpu_cores);
# 4: a worker reads on while it runs (a plan deploys beside requests), Release frees a plan,
# Loaded says which shards the worker holds now; 5: a profile result says what the ring
# costs the worker's CPU per MB (ring_cpu_ms_per_mb), a layer's trace its compute thread's CPU;
# 6: rings form beside the reader (a Release calls one off), an Error may name its plan


class Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    version: int = VERSION


class DevInfo(BaseModel):
    """What an emulated home needs to cap a worker's CPU (`galaxy bench`): its process id
    and the native id of the thread that runs its GEMMs. Only `galaxy worker --development`
    sends it; a product worker sends none."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    pid: int
    compute_tid: int


class Hello(Message):
    type: Literal["hello"] = "hello"
    name: str = Field(min_length=1, max_length=64)
    data_host: str
    data_port: int = Field(ge=1, le=65535)
    dev: DevInfo | None = None  # development workers only (see DevInfo)
    threads: int = 1
    memory_mb: float = 0.0  # memory free for the worker at start (MemAvailable)
    total_memory_mb: float = 0.0  # the device's RAM
    reserve_mb: float = 0.0  # kept back for the device's own use: the planner leaves it alone
    cached_shards: list[str] = []


class Peer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    host: str
    port: int


class Assign(Message):
    type: Literal["assign"] = "assign"
    plan_id: str
    rank: int = Field(ge=0)
    peers: list[Peer]  # every rank, in ring order
    token: str  # hex session token for the data-plane handshake
    config: dict[str, Any]  # engine ModelConfig fields
    plan: dict[str, Any]  # engine ParallelPlan fields
    shard_hash: str
    shard_meta: dict[str, Any]  # weights.flatten metadata
    shard_tensors: int  # tensor frames that follow (0 when the worker has the shard cached)
    full_hash: str | None = None  # the whole model, for a rank that decodes alone
    full_meta: dict[str, Any] | None = None
    full_tensors: int = 0
    # Development workers only: a ring without TLS even though the worker has credentials
    # (`galaxy bench` measures the cost of TLS beside the product's encrypted ring).
    plain_ring: bool = False


class Loaded(Message):
    """The rank's shard (and the whole model, for a rank that decodes alone) arrived and
    checked out. The worker joins the ring only on `Connect`, once every rank has loaded: a
    shard that takes minutes over a slow link never eats a peer's ring deadline."""

    type: Literal["loaded"] = "loaded"
    plan_id: str
    shard_mb: float
    cached_shards: list[str] = Field(default=[], max_length=4096)  # on disk now: not sent again


class Connect(Message):
    type: Literal["connect"] = "connect"
    plan_id: str


class Ready(Message):
    """The rank's ring is up: the plan takes requests."""

    type: Literal["ready"] = "ready"
    plan_id: str
    shard_mb: float


class Run(Message):
    type: Literal["run"] = "run"
    run_id: int
    plan_id: str
    op: Literal["prefill", "decode"]
    want: Literal["hidden", "logits", "last_logits"] = "hidden"
    input_ids: list[list[int]]
    attention_mask: list[list[int]] | None = None
    token_type_ids: list[list[int]] | None = None
    session: str = Field(default="", max_length=64)  # whose KV cache: one per generation


class Profile(Message):
    """Time one model's layer pieces on the compute thread (profile/compute.py `layer_costs`):
    the projections and MLP at every (row count, share), attention over `seq` tokens, a
    decode step. Cached per request on the worker, on disk across restarts
    (profile/cache.py); `fresh` measures again."""

    type: Literal["profile"] = "profile"
    config: dict[str, Any]  # engine ModelConfig fields
    seq: int = Field(ge=1, le=8192)
    rows: list[Annotated[int, Field(ge=1, le=8192)]] = Field(min_length=1, max_length=8)
    heads: list[Annotated[int, Field(ge=1, le=1024)]] = Field(min_length=1, max_length=4)
    cols: list[Annotated[int, Field(ge=1, le=262144)]] = Field(min_length=1, max_length=4)
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    seconds: float = Field(default=3.0, gt=0, le=60)
    fresh: bool = False


class ProfileResult(Message):
    type: Literal["profile_result"] = "profile_result"
    proj: list[tuple[int, int, float]]  # (rows, heads, GFLOP/s) of QKV + out projections
    mlp: list[tuple[int, int, float]]  # (rows, columns, GFLOP/s) of the MLP block
    attention: list[tuple[int, float]]  # (score elements = heads x seq x seq, GFLOP/s)
    connective_ns: float  # per element of a norm + residual add
    decode: list[tuple[int, float]]  # (layer parameters, ms) of one decode step of one layer
    rss_mb: float
    cached: bool = False
    cpu_cores: float | None = Field(default=None, gt=0)  # the process's CPU: cores or quota
    compute_threads: int = Field(default=1, ge=1)  # torch threads of the compute thread
    # CPU ms the ring spends per MB it receives and passes on, on one core (ringcpu.py)
    ring_cpu_ms_per_mb: float | None = Field(default=None, gt=0, le=1000)

    @property
    def gflops(self) -> float:
        """The MLP's throughput at the largest row count, over the measured shares: the
        speed the planner splits work by."""
        top = max(m for m, _, _ in self.mlp)
        return statistics.mean(g for m, _, g in self.mlp if m == top)


class Probe(Message):
    """Join a short-lived ring with these peers and measure the links (profile/links.py)."""

    type: Literal["probe"] = "probe"
    probe_id: str
    rank: int = Field(ge=0)
    peers: list[Peer]
    token: str
    nbytes: int = Field(default=4 << 20, ge=1024, le=64 << 20)


class ProbeResult(Message):
    type: Literal["probe_result"] = "probe_result"
    probe_id: str
    latency_ms: float  # per hop
    mbps_from_prev: float  # the link from the previous rank to this one


class LayerTrace(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    compute_ms: float  # the layer's wall time, less comm_ms
    comm_ms: float  # the compute waited on the ring
    cpu_ms: float | None = None  # CPU the compute thread used (a quota or a busy core: < compute)


class Result(Message):
    type: Literal["result"] = "result"
    run_id: int
    rank: int
    seq_start: int
    seq_stop: int
    tensors: list[Literal["hidden", "logits"]]  # binary frames that follow, in this order
    total_ms: float
    compute_ms: float
    comm_wait_ms: float
    bytes_sent: int
    bytes_received: int
    peak_rss_mb: float = 0.0  # since this plan was assigned
    layers: list[LayerTrace] = []


class Error(Message):
    type: Literal["error"] = "error"
    code: Literal["bad_message", "bad_shard", "plan", "worker_lost", "internal", "version"]
    text: str
    run_id: int | None = None
    plan_id: str | None = None  # the plan it is about (a ring that did not form)


class Renew(Message):
    """The worker's certificate nears its end: a new key's request, sent over the link its
    current certificate authenticates."""

    type: Literal["renew"] = "renew"
    csr: str = Field(min_length=64, max_length=8000)


class Renewed(Message):
    type: Literal["renewed"] = "renewed"
    cert: str = Field(min_length=64, max_length=16000)


class Release(Message):
    """The coordinator is done with a plan (replaced, or a ring member lost): the worker closes
    its ring and frees its shard. Unknown plan ids are ignored (already gone)."""

    type: Literal["release"] = "release"
    plan_id: str = Field(max_length=64)


class Shutdown(Message):
    type: Literal["shutdown"] = "shutdown"


AnyMessage = Annotated[
    Hello
    | Assign
    | Loaded
    | Connect
    | Ready
    | Run
    | Result
    | Profile
    | ProfileResult
    | Probe
    | ProbeResult
    | Error
    | Renew
    | Renewed
    | Release
    | Shutdown,
    Field(discriminator="type"),
]
_adapter: TypeAdapter[Any] = TypeAdapter(AnyMessage)


def parse(text: str | bytes) -> Message:
    """Decode one JSON message; raises pydantic.ValidationError on anything malformed."""
    return _adapter.validate_json(text)
