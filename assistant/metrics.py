"""The gateway's Prometheus metrics; `GET /metrics` (api/routes/metrics.py) renders `registry`.

Each app has its own `CollectorRegistry`, never prometheus_client's global one, so several
gateways in one process (the tests) keep their own counts. What is measured, and from where:

- HTTP requests (`MetricsMiddleware`, an ASGI middleware; websockets pass through uncounted):
  `galaxy_http_requests_total{method, route, status}` and
  `galaxy_http_request_duration_seconds{method, route}`. `route` is the route's path template
  (`/v1/home/devices/{device_id}`), never the raw path, and `unmatched` for a path no route
  serves, so a client cannot grow the label set at will.
- Every request the request log records (`Store.on_request`), by kind (assist, embed, generate,
  wyoming, ...) and status (ok, failed): `galaxy_requests_total{kind, status}`; and the time of
  each stage, `galaxy_stage_duration_seconds{kind, stage}`, stage one of `STAGES`:
  stt, intent, cluster (an assist turn's time on the cluster), queue (waiting for the cluster),
  cluster_prefill and cluster_decode (one observation per step, from the request's trace), tts,
  total. A stage that did not run reports 0 ms and is not observed.
- Per device, from each trace step's `devices` (assistant/cluster/gate.py):
  `galaxy_device_{busy,compute,wait}_seconds_total{device}` (wait: the ring's) and
  `galaxy_device_{sent,received}_bytes_total{device}`. The gateway's in-process device reports
  its wall time only (busy).
- At scrape time, from the cluster: `galaxy_workers_online`, `galaxy_requests_in_flight` (the
  queue's depth), `galaxy_queue_capacity`, `galaxy_replans_total`,
  `galaxy_plan_devices{model, strategy}` (one series per model with a current plan).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant.cluster.manager import ClusterManager

log = logging.getLogger(__name__)

STAGES = (
    "stt",
    "intent",
    "cluster",
    "queue",
    "cluster_prefill",
    "cluster_decode",
    "tts",
    "total",
)
# Request-log timing key -> stage, for the stages timed once per request.
_TIMED = {
    "stt_ms": "stt",
    "intent_ms": "intent",
    "cluster_ms": "cluster",
    "queue_ms": "queue",
    "tts_ms": "tts",
    "total_ms": "total",
}
# From a 2 ms decode step to a minute-long generation.
STAGE_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
UNMATCHED = "unmatched"


class GatewayMetrics:
    """The metrics of one gateway (see the module docstring). Thread-safe: the request log
    may be written from any thread."""

    def __init__(self, manager: ClusterManager) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "galaxy_http_requests",
            "HTTP requests answered, by route template and status code",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_seconds = Histogram(
            "galaxy_http_request_duration_seconds",
            "Time from an HTTP request's arrival to the end of its response",
            ["method", "route"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "galaxy_requests",
            "Requests recorded in the request log, by kind and status",
            ["kind", "status"],
            registry=r,
        )
        self.stage_seconds = Histogram(
            "galaxy_stage_duration_seconds",
            "Time of one stage of a request (cluster_decode: one decode step)",
            ["kind", "stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        device = ["device"]
        self.busy = Counter(
            "galaxy_device_busy_seconds", "A device's time in cluster steps", device, registry=r
        )
        self.compute = Counter(
            "galaxy_device_compute_seconds", "A device's compute time", device, registry=r
        )
        self.wait = Counter(
            "galaxy_device_wait_seconds",
            "A device's time waiting for the ring (communication not hidden by compute)",
            device,
            registry=r,
        )
        self.sent = Counter(
            "galaxy_device_sent_bytes", "Bytes a device sent on the ring", device, registry=r
        )
        self.received = Counter(
            "galaxy_device_received_bytes",
            "Bytes a device received on the ring",
            device,
            registry=r,
        )
        r.register(ClusterCollector(manager))

    # ----- HTTP (MetricsMiddleware) -----

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_seconds.labels(method, route).observe(seconds)

    # ----- the request log (Store.on_request) -----

    def observe_request(self, record: Mapping[str, Any]) -> None:
        """Count one logged request and observe its stages and devices."""
        kind = str(record.get("kind") or "unknown")
        self.requests.labels(kind, str(record.get("status") or "unknown")).inc()
        timings = record.get("timings") or {}
        for key, stage in _TIMED.items():
            self._stage(kind, stage, timings.get(key))
        trace = timings.get("trace") or []
        if trace:
            for step in trace:
                self._step(kind, step)
        else:  # no trace (an older or partial record): the summary times
            self._stage(kind, "cluster_prefill", timings.get("prefill_ms"))
            self._stage(kind, "cluster_decode", timings.get("decode_ms_per_token"))

    def _stage(self, kind: str, stage: str, ms: object) -> None:
        if isinstance(ms, int | float) and not isinstance(ms, bool) and ms > 0:
            self.stage_seconds.labels(kind, stage).observe(ms / 1e3)

    def _step(self, kind: str, step: Mapping[str, Any]) -> None:
        op = step.get("op")
        if op in ("prefill", "decode"):
            self._stage(kind, f"cluster_{op}", step.get("ms"))
        for name, d in (step.get("devices") or {}).items():
            for counter, key, scale in (
                (self.busy, "total_ms", 1e-3),
                (self.compute, "compute_ms", 1e-3),
                (self.wait, "wait_ms", 1e-3),
                (self.sent, "sent", 1.0),
                (self.received, "received", 1.0),
            ):
                value = d.get(key)
                if isinstance(value, int | float) and value >= 0:
                    counter.labels(str(name)).inc(value * scale)


class ClusterCollector:
    """Gauges read from the cluster at scrape time (on the event loop: routes/metrics.py)."""

    def __init__(self, manager: ClusterManager) -> None:
        self.manager = manager

    def collect(self) -> Iterable[Metric]:
        m = self.manager
        yield GaugeMetricFamily(
            "galaxy_workers_online", "Paired workers connected now", value=len(m.online())
        )
        yield GaugeMetricFamily(
            "galaxy_requests_in_flight",
            "Requests running on or waiting for the cluster",
            value=m.in_flight,
        )
        yield GaugeMetricFamily(
            "galaxy_queue_capacity", "Requests in flight before 503", value=m.queue_size
        )
        yield CounterMetricFamily(
            "galaxy_replans",
            "Background re-plans run (a worker joined or left, a link changed)",
            value=int(m.replan_status.get("runs", 0)),
        )
        plans = GaugeMetricFamily(
            "galaxy_plan_devices",
            "Devices in each served model's current plan (1: the gateway alone)",
            labels=["model", "strategy"],
        )
        for model, dep in sorted(m.deployments.items()):
            plans.add_metric([model, dep.plan.strategy], max(1, len(dep.workers)))
        yield plans


# ----------------------------------------------------------------------------- HTTP


class MetricsMiddleware:
    """Counts and times every HTTP request by the template of the route that served it."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception before the response started: the server answers 500

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            self.metrics.http_request(
                scope["method"], route_template(scope), status, time.perf_counter() - started
            )


def route_template(scope: Scope) -> str:
    """The path template of the route that served `scope`, its router prefixes included
    (`/v1/home/devices/{device_id}`), or `UNMATCHED`.

    Routing leaves the matched route in `scope["route"]`; FastAPI gives the route as its
    router declared it (without the include prefix), so the prefix is the part of the raw
    path before the longest tail that the route's own pattern matches. The app's own routes
    (/docs, /openapi.json) are not left in the scope: they are found by their pattern."""
    path = str(scope.get("path", ""))
    route = scope.get("route")
    if route is None:
        routes = getattr(getattr(scope.get("app"), "router", None), "routes", [])
        route = next((r for r in routes if (m := _pattern(r)) and m.match(path)), None)
    pattern = _pattern(route)
    template = getattr(route, "path_format", None)
    if pattern is None or not isinstance(template, str):
        return UNMATCHED
    for cut in [i for i, ch in enumerate(path) if ch == "/"]:
        if pattern.match(path[cut:]):
            return path[:cut] + template
    return template


def _pattern(route: object) -> re.Pattern[str] | None:
    pattern = getattr(route, "path_regex", None)
    return pattern if isinstance(pattern, re.Pattern) else None
