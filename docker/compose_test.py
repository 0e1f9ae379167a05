#!/usr/bin/env python3
"""`make compose-test`: the Docker deployment proved with a real engine on this machine.

What it does, in order (each step timed):
 1. a Docker engine: the running one, else Debian's docker.io started here
    (`dockerd --iptables=false --bridge=none`: containers use host networking only);
    Compose v2 from Debian 13's docker-compose package (Debian 12 has only v1);
 2. a base image: Debian 12 with Python 3.11 by debootstrap, `docker import`ed (no container
    registry is reachable here);
 3. a wheelhouse of the product's dependencies (pip wheel, torch's CPU build as pinned);
 4. the image, built with no network from those (docker/Dockerfile): runs as non-root, holds
    no secret; `docker compose config` is valid;
 5. the README's three steps, on 127.0.0.1 with distinct ports and one compose project (own
    volumes) per device: `docker compose up -d gateway`; `galaxy pair` for a code; a worker
    paired by `PAIRING_CODE=...` that finds the gateway by mDNS, and one paired by the owner's
    approval; both healthy;
 6. /v1/generate and /v1/assist (a command, then a question answered by SmolLM2) with plans
    that use both workers;
 7. a worker's container restarted: it rejoins with no new pairing; the gateway's container
    restarted: the home's state kept and both workers back by themselves; every stop within
    10 s;
 8. everything torn down (containers, networks, volumes; the dockerd it started).

Caches (between runs; `GALAXY_DOCKER_CACHE`, default ~/.cache/galaxy-home/docker): the base
image's tarball, the wheelhouse, Compose; the engine keeps the image's layers. For a cold run,
delete the folder and the images galaxy-home:compose-test, galaxy-home:compose-test-builder and
galaxy-base:bookworm-py311. Exits non-zero at the first failed check, after the teardown.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import suppress
from typing import Any

from compose_setup import (
    IMAGE,
    REPO,
    T0,
    Failed,
    base_image,
    build,
    check,
    checks,
    compose,
    engine,
    env,
    run,
    say,
    step,
    unlink_wheels,
    wait,
    wheelhouse,
)

PROJECTS = {
    "gateway": "ghtest-gateway",
    "kitchen-pi": "ghtest-kitchen-pi",
    "laptop": "ghtest-laptop",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Home:
    """The gateway and the workers, each its own compose project (a device), on 127.0.0.1."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = ""
        # The same settings a home sets in .env, pointed at loopback for this one machine.
        self.env = {
            "GALAXY_IMAGE": IMAGE,
            "GALAXY_HOST": "127.0.0.1",
            "GALAXY_PORT": str(self.port),
            "GALAXY_WORKER_PORT": str(free_port()),
            "GALAXY_MDNS_INTERFACES": '["127.0.0.1"]',
            "GALAXY_STRATEGY": "hmp",  # both workers in every plan
            "GALAXY_HOME_NAME": f"compose-test-{os.getpid()}",
        }

    def compose(self, device: str, *args: str, **extra: str) -> str:
        return run(
            "docker",
            "compose",
            "-p",
            PROJECTS[device],
            *args,
            extra={**self.env, **extra},
            quiet=True,
        )

    def service(self, device: str) -> str:
        return "gateway" if device == "gateway" else "worker"

    def call(self, method: str, path: str, body: Any = None) -> Any:
        req = urllib.request.Request(
            self.url + path, method=method, data=None if body is None else json.dumps(body).encode()
        )
        req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=300) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise Failed(f"{method} {path}: {exc.code} {exc.read()[:400]!r}") from None

    def health(self, device: str) -> str:
        cid = self.compose(device, "ps", "-q", self.service(device)).strip()
        return run("docker", "inspect", "-f", "{{.State.Health.Status}}", cid, quiet=True).strip()

    def certificate(self, device: str) -> str:
        """The SHA-256 of the worker's certificate in its volume."""
        path = "/var/lib/galaxy-home/credentials/cert.pem"
        return self.compose(device, "exec", "-T", "worker", "sha256sum", path).split()[0]

    def logs(self, device: str) -> str:
        return self.compose(device, "logs", "--no-color", self.service(device))

    def online(self) -> set[str]:
        return {d["name"] for d in self.call("GET", "/v1/devices") if d.get("online")}

    def stop(self, device: str) -> float:
        started = time.monotonic()
        self.compose(device, "stop", self.service(device))
        return time.monotonic() - started


def devices_of(plan: Any) -> set[str]:
    """Every device name a plan (as the API returns it) mentions."""
    found: set[str] = set()
    if isinstance(plan, dict):
        for key, value in plan.items():
            if key in ("devices", "device") and isinstance(value, list):
                found |= {v if isinstance(v, str) else v.get("name", "") for v in value}
            found |= devices_of(value)
    elif isinstance(plan, list):
        for item in plan:
            found |= devices_of(item)
    return found


def scenario(home: Home) -> None:
    workers = {"kitchen-pi", "laptop"}
    with step("step 1: docker compose up -d gateway"):
        home.compose("gateway", "up", "-d", "gateway")
        wait("the gateway answers /v1/health", lambda: home.call("GET", "/v1/health"), 240)
        logs = home.logs("gateway")
        found = re.search(r"API token \(shown once, stored hashed\): (\S+)", logs)
        check(found is not None, "the gateway logs its first API token", logs[-800:])
        assert found is not None
        home.token = found.group(1)
    with step("step 2: galaxy pair for a code"):
        out = home.compose(
            "gateway",
            "exec",
            "-T",
            "gateway",
            "galaxy",
            "pair",
            "--token",
            home.token,
            "--gateway",
            home.url,
        )
        code = re.search(r"pairing code: (\S+)", out)
        check(code is not None, "galaxy pair in the gateway's container prints a code", out)
        assert code is not None
    with step("step 3: PAIRING_CODE=... docker compose up -d worker; one more by approval"):
        home.compose(
            "kitchen-pi",
            "up",
            "-d",
            "worker",
            PAIRING_CODE=code.group(1),
            GALAXY_WORKER_NAME="kitchen-pi",
        )
        home.compose(
            "laptop", "up", "-d", "worker", GALAXY_WORKER_NAME="laptop", GALAXY_GATEWAY=home.url
        )
        ticket = wait(
            "the laptop's pairing request",
            lambda: [r for r in home.call("GET", "/v1/pairing/requests") if r["name"] == "laptop"],
            120,
        )
        home.call("POST", f"/v1/pairing/requests/{ticket[0]['id']}/approve")
        wait("both workers online", lambda: workers <= home.online(), 180)
        # kitchen-pi was given no GALAXY_GATEWAY: mDNS is the only way it could find it.
        check(True, "a worker paired by code (found by mDNS) and one by approval are online")
        wait(
            "both workers' health checks",
            lambda: all(home.health(w) == "healthy" for w in workers),
            120,
        )
        check(home.health("gateway") == "healthy", "gateway and workers are healthy (docker)")
        wait(
            "both models deployed",
            lambda: (
                {"minilm", "smollm2-135m"} <= set(home.call("GET", "/v1/plan").get("plans", {}))
            ),
            300,
        )
    with step("requests across both workers"):
        gen = home.call(
            "POST", "/v1/generate", {"prompt": "Name a kitchen herb.", "max_new_tokens": 16}
        )
        check(bool(gen["text"].strip()) and len(gen["tokens"]) > 0, "/v1/generate answers", gen)
        check(workers <= devices_of(gen["plan"]), "its plan uses both workers", gen["plan"])
        command = home.call("POST", "/v1/assist", {"text": "turn on the kitchen lights"})
        check(
            any(c.get("new") is True for c in command["changes"]), "a spoken command acts", command
        )
        question = home.call("POST", "/v1/assist", {"text": "Why is the sky blue?"})
        check(bool(question["reply"]["text"].strip()), "/v1/assist answers a question", question)
        check(
            workers <= devices_of(question["plan"]), "its plan uses both workers", question["plan"]
        )
    with step("a worker's container restarted"):
        cert = home.certificate("kitchen-pi")
        took = home.stop("kitchen-pi")
        check(took < 10, f"the worker stops within 10 s ({took:.1f} s)", "too slow")
        wait("kitchen-pi offline", lambda: "kitchen-pi" not in home.online(), 60)
        home.compose("kitchen-pi", "start", "worker")
        wait("kitchen-pi back online", lambda: "kitchen-pi" in home.online(), 120)
        log = home.logs("kitchen-pi")
        same = home.certificate("kitchen-pi") == cert and not home.call(
            "GET", "/v1/pairing/requests"
        )
        check(same, "it rejoined with the same certificate, no pairing again", log[-600:])
        # The plan without it keeps serving until the background re-plan has installed the
        # one with it again (a request in that second ran on the laptop alone once).
        wait(
            "kitchen-pi planned in again",
            lambda: all(
                workers <= set(p["devices"]) for p in home.call("GET", "/v1/plan")["plans"].values()
            ),
            120,
        )
        gen = home.call("POST", "/v1/generate", {"prompt": "Name a fruit.", "max_new_tokens": 8})
        check(workers <= devices_of(gen["plan"]), "and serves in plans again", gen["plan"])
        check("Traceback" not in log, "it stopped on SIGTERM cleanly", log[-1500:])
    with step("the gateway's container restarted"):
        took = home.stop("gateway")
        check(took < 10, f"the gateway stops within 10 s ({took:.1f} s)", "too slow")
        home.compose("gateway", "start", "gateway")
        wait("the gateway answers again", lambda: home.call("GET", "/v1/health"), 240)
        lights = [d for d in home.call("GET", "/v1/home")["devices"] if "kitchen" in d["id"]]
        check(any(d["state"].get("on") for d in lights), "the home's state was kept", lights)
        wait("both workers rejoin by themselves", lambda: workers <= home.online(), 180)
        check(True, "both workers rejoined the restarted gateway")
        log = home.logs("gateway")
        check("Traceback" not in log, "the gateway stopped on SIGTERM cleanly", log[-1500:])


def image_checks() -> None:
    uid = run("docker", "run", "--rm", IMAGE, "id", "-u").strip()
    check(uid != "0", "the image runs as a non-root user", f"uid {uid}")
    secrets = run(
        "docker", "run", "--rm", IMAGE, "sh", "-c",
        "grep -rlI --exclude='*.py' -e '-----BEGIN .*PRIVATE KEY-----' -e '^gh_' "
        "/etc /home /opt /var /root 2>/dev/null; find / -xdev -name '*.sqlite3' 2>/dev/null; "
        "ls -A /var/lib/galaxy-home",
    )  # fmt: skip
    check(secrets.strip() == "", "the image holds no private key, token or database", secrets)
    run("docker", "compose", "-f", "compose.yaml", "config", "-q", extra={"GALAXY_IMAGE": IMAGE})
    check(True, "docker compose config is valid")


def teardown(home: Home | None) -> None:
    for device, project in PROJECTS.items():
        started = time.monotonic()
        subprocess.run(
            ["docker", "compose", "-p", project, "down", "-v", "--remove-orphans"],
            env={**env, **(home.env if home else {})},
            cwd=REPO,
            capture_output=True,
            check=False,
        )
        say(f"down {device}: {time.monotonic() - started:.1f} s")
    unlink_wheels()


def main() -> int:
    daemon, home, failed = None, None, 1
    try:
        with step("engine and Compose"):
            daemon = engine()
            compose()
            say(run("docker", "compose", "version").strip())
        with step("base image (debootstrap, cached)"):
            base_image()
        with step("wheelhouse (cached)"):
            wheels = wheelhouse()
        with step("image build (no network)"):
            build(wheels)
        image_checks()
        teardown(None)  # a previous run's leftovers, if it was killed
        home = Home()
        scenario(home)
        say(f"compose-test passed in {time.monotonic() - T0:.0f} s")
        failed = 0
    except Failed as exc:
        say(f"FAILED: {exc}")
        if home is not None:
            for device in PROJECTS:
                with suppress(Failed):
                    print(f"--- {device} log (tail)\n{home.logs(device)[-3000:]}", flush=True)
    finally:
        with step("teardown"):
            teardown(home)
            if daemon is not None:
                daemon.terminate()
                daemon.wait(60)
    print(f"compose: {len(checks)} passed, {failed} failed")
    return failed


if __name__ == "__main__":
    sys.exit(main())
