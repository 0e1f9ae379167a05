"""The product's ring TLS for the bench's development workers.

Paired workers run their ring over mutual TLS with certificates from the home's CA. The bench's
workers are not paired (a development coordinator), so the bench makes a throwaway CA and puts
each worker's credentials in its data dir before starting it; the worker then encrypts its
ring as a paired one does (edge_worker/service/run.py). A variant with `plain_ring` asks the
workers for a ring without TLS, the baseline that shows what TLS costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from assistant.planner.profiles import DeviceProfile
from assistant.trust.ca import HomeCA
from edge_worker.service.credentials import Credentials


def issue_ring_credentials(root: Path, names: Sequence[str]) -> None:
    """A CA in `root/ca` and, for each name, credentials in `root/<name>/credentials` (the
    data dir `launch_workers` gives the worker of that name)."""
    ca = HomeCA.load_or_create(root / "ca", "Galaxy bench")
    for name in names:
        pending, csr = Credentials.new_request(root / name / "credentials", name)
        cert, _ = ca.issue_device_cert(csr, name)
        pending.save(cert, ca.cert_pem, "ws://bench.invalid/")


# The plain ring's CPU per byte over the product's (TLS 1.3, then sealed records): 0.59 against
# 0.88 ms per MB in the data plane A/B of 12-07 (bench/dataplane-ab-sealed.json). The cost
# model prices the product's ring, which encrypts.
PLAIN_RING_CPU = 0.59 / 0.88


def plain_ring_profile(d: DeviceProfile) -> DeviceProfile:
    """`d` as the cost model should see it on a ring without TLS."""
    return d.model_copy(update={"ring_cpu_ms_per_mb": d.ring_cpu_ms_per_mb * PLAIN_RING_CPU})
