"""Exceptions of the benchmark package.

GalaxyError                      (edge_worker.errors)
 +-- EmulationError              setting up or applying the emulated home failed
 |    +-- EmulationUnavailable   a requested emulation needs what this machine lacks (strict)
 +-- TransportBenchFailed        a rank of the transport benchmark failed or missed its deadline
"""

from __future__ import annotations

from edge_worker.errors import GalaxyError

__all__ = ["EmulationError", "EmulationUnavailable", "TransportBenchFailed"]


class EmulationError(GalaxyError):
    """Setting up or applying the emulation failed."""


class EmulationUnavailable(EmulationError):
    """A requested emulation needs a capability this machine or user lacks (strict mode)."""


class TransportBenchFailed(GalaxyError):
    """A rank of the transport benchmark failed, or the run missed its deadline."""
