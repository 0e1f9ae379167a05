"""The attacker's tools (tests/security): raw HTTP from any loopback address, a pairing run by
hand, a ring peer a real worker is told to meet, idle connections, a Wyoming line reader.

These play the attacker, so they are written for the tests rather than taken from the product
(the legitimate side of each exchange is the product's own code)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import json
import secrets
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import websockets
from spake2 import SPAKE2_A, SPAKE2_B

from assistant.discovery.mdns import GatewayDiscovery
from assistant.launcher import RunningGateway
from assistant.trust.ca import HomeCA
from edge_worker.comm import handshake
from edge_worker.comm import tls as ring_tls
from edge_worker.comm.handshake import Identity
from edge_worker.errors import GalaxyError
from edge_worker.service import protocol as P
from edge_worker.service.credentials import Credentials
from edge_worker.service.discovery import FoundGateway, find_gateway
from edge_worker.spec.pairing import IDENTITIES, code_id, normalise, proof, transcript

Answer = tuple[int, Any, dict[str, str]]  # status, JSON body (or text), headers (lower case)


def request(
    gw: RunningGateway,
    method: str,
    path: str,
    body: bytes | None = None,
    *,
    token: str | None = "default",
    source: str = "127.0.0.1",
    headers: dict[str, str] | None = None,
) -> Answer:
    """One HTTP request from `source` (any 127.x address: the gateway sees another client)."""
    conn = http.client.HTTPConnection(
        gw.settings.host, gw.settings.port, timeout=120, source_address=(source, 0)
    )
    sent = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        sent["Authorization"] = f"Bearer {gw.token if token == 'default' else token}"
    try:
        conn.request(method, path, body=body, headers=sent)
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    try:
        payload: Any = json.loads(data)
    except ValueError:
        payload = data.decode("utf-8", "replace")
    return resp.status, payload, {k.lower(): v for k, v in resp.getheaders()}


def device(ca: HomeCA, directory: Path, name: str) -> Credentials:
    """Credentials for `name` signed by `ca` (another home's, or ours for an insider)."""
    pending, csr = Credentials.new_request(directory, name)
    cert, _ = ca.issue_device_cert(csr, name)
    return pending.save(cert, ca.cert_pem, "wss://127.0.0.1:9/worker")


def pairing_run(
    gw: RunningGateway, code: str, name: str, source: str, directory: Path, *, guess: str = ""
) -> Answer:
    """One SPAKE2 pairing run as a worker makes it, from `source`, with `code` (or the code's
    public id and a `guess` at its secret): the answer of the step that ended it."""
    secret = normalise(code) if not guess else code_id(code) + guess
    a = SPAKE2_A(secret.encode(), idA=IDENTITIES[0], idB=IDENTITIES[1])
    msg_a = a.start()
    start = {"code_id": code_id(code), "name": name, "msg_a": base64.b64encode(msg_a).decode()}
    status, started, headers = request(
        gw, "POST", "/v1/pairing/pake", json.dumps(start).encode(), token=None, source=source
    )
    if status != 200:
        return status, started, headers
    msg_b = base64.b64decode(started["msg_b"])
    seen = transcript(msg_a, msg_b, started["ca"].encode(), started["worker_url"], name)
    _, csr = Credentials.new_request(directory, name)
    finish = {"csr": csr.decode(), "proof": proof(a.finish(msg_b), "worker", seen, csr)}
    path = f"/v1/pairing/pake/{started['session']}/finish"
    return request(gw, "POST", path, json.dumps(finish).encode(), token=None, source=source)


def closed(sock: socket.socket, timeout: float = 15.0) -> bytes:
    """What the other end sent before closing `sock` (a TLS alert is a close too); fails the
    test if it keeps the connection open past `timeout`."""
    sock.settimeout(timeout)
    got = b""
    try:
        while chunk := sock.recv(4096):
            got += chunk
    except TimeoutError:
        raise AssertionError(f"still open after {timeout:.0f} s (received {got[:40]!r})") from None
    except (ssl.SSLError, ConnectionError):
        pass
    return got


def idle(host: str, port: int, n: int) -> list[socket.socket]:
    """`n` TCP connections that say nothing."""
    return [socket.create_connection((host, port), timeout=10) for _ in range(n)]


class WyomingLine:
    """A Wyoming client on a raw socket: events out as header lines with inline data, events in
    with their data merged (payloads skipped)."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=30)
        self.reader = self.sock.makefile("rb")

    def send(self, event: dict[str, Any]) -> None:
        self.sock.sendall(json.dumps(event).encode() + b"\n")

    def read(self) -> dict[str, Any] | None:
        """The next event, or None when the server closed the connection."""
        try:
            line = self.reader.readline()
        except ConnectionError:
            return None
        if not line:
            return None
        header: dict[str, Any] = json.loads(line)
        if header.get("data_length"):
            extra = json.loads(self.reader.read(header["data_length"]))
            header["data"] = {**header.get("data", {}), **extra}
        if header.get("payload_length"):
            self.reader.read(header["payload_length"])
        return header

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


class WorkerLog:
    """What a worker process writes to its log from now on."""

    def __init__(self, path: Path) -> None:
        self.path, self.start = path, path.stat().st_size

    def wait_for(self, text: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            with open(self.path, "rb") as f:
                f.seek(self.start)
                new = f.read().decode("utf-8", "replace")
            if text in new or time.monotonic() > deadline:
                assert text in new, f"{text!r} not in the worker's log: {new[-1500:]}"
                return new
            time.sleep(0.1)


class RingProbe:
    """A link probe (`P.Probe`) that a real worker runs with a peer the test plays.

    The worker is rank 0 of a two-rank ring; rank 1 is `mallory`, a device of the home (its
    certificate comes from the home CA) listening on the test's side. The cluster is held (its
    gate, as a re-plan holds it) while the probe runs, so no plan forms a ring on the worker's
    data port meanwhile. Inside the `with`, the worker has dialled mallory already (that link is
    accepted here), so its data port at `address` listens for mallory's connection. On exit the
    test's connections close and `outcome` is what the worker reported: a `ProbeResult`, or the
    error its failed probe raised on the gateway.
    """

    def __init__(
        self, gw: RunningGateway, worker: str, mallory: Credentials, token: bytes | None = None
    ) -> None:
        self.gw, self.worker = gw, worker
        self.token = token or secrets.token_bytes(16)
        hello = gw.state.coordinator.sessions[worker].hello
        self.address = (hello.data_host, hello.data_port)
        self.server_ctx, self.client_ctx = mallory.ring_contexts()
        self.me = Identity(1, 2, self.token, mallory.name)
        self.peer = Identity(0, 2, self.token, worker)
        self.listener = handshake.listen("127.0.0.1", 0)
        self.sockets: list[socket.socket] = []
        self.outcome: P.ProbeResult | GalaxyError | None = None

    def __enter__(self) -> RingProbe:
        loop = self.gw.state.coordinator.server.get_loop()  # type: ignore[union-attr]
        self._answer = asyncio.run_coroutine_threadsafe(self._probe(), loop)
        deadline = time.monotonic() + 60
        inbound = handshake.accept(self.listener, self.me, self.peer, deadline, self.server_ctx)
        self.sockets.append(inbound)
        return self

    async def _probe(self) -> P.ProbeResult | GalaxyError:
        manager = self.gw.state.manager
        session = self.gw.state.coordinator.sessions[self.worker]
        probe_id = secrets.token_hex(6)
        peers = [
            P.Peer(name=self.worker, host=self.address[0], port=self.address[1]),
            P.Peer(name=self.me.name, host="127.0.0.1", port=self.listener.getsockname()[1]),
        ]
        msg = P.Probe(probe_id=probe_id, rank=0, peers=peers, token=self.token.hex(), nbytes=4096)
        async with manager.coordinator.control, manager.coordinator.quiet:
            await session.send(msg)
            try:
                while True:
                    item = await session.next(60)
                    if isinstance(item, P.ProbeResult) and item.probe_id == probe_id:
                        return item
            except GalaxyError as exc:
                return exc

    def join(self) -> socket.socket:
        """Connect as rank 1 should: the home's certificate, the token, the rank."""
        deadline = time.monotonic() + 15
        sock = handshake.dial(self.address, self.me, self.peer, deadline, self.client_ctx)
        self.sockets.append(sock)
        return sock

    def connect(self, tls: ssl.SSLContext | None = None) -> socket.socket:
        """A connection to the worker's data port, through TLS with `tls` if given: a home
        context (it checks the worker's certificate) speaks the ring's own protocol, TLS and
        then sealed records (comm/tls.py); a stranger's context only TLS, which is refused."""
        sock = socket.create_connection(self.address, timeout=15)
        self.sockets.append(sock)
        if tls is not None and tls.verify_mode == ssl.CERT_REQUIRED:
            sock = ring_tls.wrap(sock, tls, server_side=False, peer_name=self.worker)
            self.sockets.append(sock)
        elif tls is not None:
            hostname = self.worker if tls.check_hostname else None
            sock = tls.wrap_socket(sock, server_hostname=hostname)
            self.sockets.append(sock)
        return sock

    def __exit__(self, *exc: object) -> None:
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.close()
        self.listener.close()
        self.outcome = self._answer.result(90)


def stranger_tls(creds: Credentials | None) -> ssl.SSLContext:
    """A TLS client that checks nobody, presenting `creds`' certificate if given."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if creds is not None:
        ctx.load_cert_chain(creds.cert_path, creds.key_path)
    return ctx


def worker_link(gw: RunningGateway, ctx: ssl.SSLContext, name: str) -> str:
    """Open the gateway's worker endpoint through `ctx` and say hello as `name`: "accepted",
    "closed <code>: <reason>", or "refused: <exception>" (the TLS handshake failed)."""

    async def attempt() -> str:
        async with websockets.connect(gw.state.coordinator.url, ssl=ctx, open_timeout=10) as ws:
            hello = P.Hello(name=name, data_host="127.0.0.1", data_port=9)
            try:  # a refused certificate is closed before its hello is read: sending may fail
                await ws.send(hello.model_dump_json())
                await asyncio.wait_for(ws.recv(), 5)
            except websockets.ConnectionClosed as exc:
                frame = exc.rcvd
                return f"closed {frame.code}: {frame.reason}" if frame else "closed"
            except TimeoutError:
                pass
            return "accepted"

    try:
        return asyncio.run(attempt())
    except (ssl.SSLError, OSError, websockets.InvalidHandshake, websockets.ConnectionClosed) as exc:
        return f"refused: {type(exc).__name__}: {exc}"


def rogue_answer(rogue_ca: HomeCA, body: dict[str, Any]) -> dict[str, Any]:
    """A gateway that does not know the code: SPAKE2 with a guess, its own CA, its proof."""
    b = SPAKE2_B(b"22222222", idA=IDENTITIES[0], idB=IDENTITIES[1])
    msg_b = b.start()
    msg_a = base64.b64decode(body["msg_a"])
    url = "wss://127.0.0.1:9/worker"
    seen = transcript(msg_a, msg_b, rogue_ca.cert_pem, url, body["name"])
    return {
        "session": "s",
        "msg_b": base64.b64encode(msg_b).decode(),
        "ca": rogue_ca.cert_pem.decode(),
        "worker_url": url,
        "proof": proof(b.finish(msg_a), "gateway", seen),
    }


async def announce_and_find(home_name: str, api_port: int) -> FoundGateway:
    """Announce a gateway for `home_name` at `api_port` on loopback mDNS, and find it as a
    worker without a gateway address does."""
    advert = GatewayDiscovery(
        name=home_name, api_port=api_port, worker_port=api_port, interfaces=["127.0.0.1"]
    )
    await advert.start()
    try:
        return await find_gateway(timeout=15, home=home_name)
    finally:
        await advert.stop()
