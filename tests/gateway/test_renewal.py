"""A device's certificate is renewed over its authenticated link before it expires: the worker
asks with a new key, the gateway answers on the same link, and the next connection presents the
new certificate; the one it was paired with is refused from then on. (Certificates are valid
for one day here, so that renewal is due at once.)"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from assistant.launcher import RunningGateway
from edge_worker.service.credentials import Credentials
from tests.gateway.conftest import gateway_settings


def wait_for(check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def online(gw: RunningGateway) -> set[str]:
    return {d["name"] for d in gw.call("GET", "/v1/devices") if d["online"]}


def test_a_certificate_near_its_end_is_renewed_and_the_old_one_retired(tmp_path: Path) -> None:
    workers = tmp_path / "workers"
    with RunningGateway(gateway_settings(tmp_path, device_cert_days=1)) as gw:
        store = gw.state.store
        (worker,) = gw.add_workers(["attic-pi"], workers)
        gw.wait_online(["attic-pi"])
        wait_for(lambda: (store.serials("attic-pi") or ("", None))[1] is not None)
        renewed, paired = store.serials("attic-pi") or ("", None)
        creds_dir = workers / "attic-pi" / "credentials"
        wait_for(lambda: str(getattr(Credentials.load(creds_dir), "serial", "")) == renewed)

        paired_at = store.device("attic-pi").paired_at  # type: ignore[union-attr]
        worker.kill()  # the next start presents the renewed certificate, and pairs no more
        gw.workers.remove(worker)
        wait_for(lambda: "attic-pi" not in online(gw))
        gw.add_workers(["attic-pi"], workers)
        gw.wait_online(["attic-pi"])
        answer = gw.call("POST", "/v1/embed", {"texts": ["is the garage open"]})
        paired_still_trusted = store.is_trusted("attic-pi", int(paired or 0))
        renewed_trusted = store.is_trusted("attic-pi", int(renewed))
        paired_again = store.device("attic-pi").paired_at != paired_at  # type: ignore[union-attr]

    assert paired is not None and paired != renewed
    assert not paired_still_trusted  # retired once the renewed certificate was seen
    assert renewed_trusted  # (renewed again, 1-day certificates: valid until the newest is seen)
    assert not paired_again
    assert len(answer["embeddings"]) == 1
