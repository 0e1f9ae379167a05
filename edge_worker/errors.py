"""Exceptions raised by the edge worker.

GalaxyError
 +-- ModelError
 |    +-- UnsupportedModel      architecture or option the engine does not implement
 |    +-- ModelNotAvailable     alias/id/path that cannot be loaded offline
 |    +-- WeightMismatch        a source weight is missing, unexpected or the wrong shape
 +-- PlanError                  a parallel plan that cannot run (bad split, empty share, ...)
 +-- CommError
      +-- WorkerLost            a peer stopped answering or closed its connection
      +-- CommTimeout           a collective or receive missed its deadline
"""

from __future__ import annotations


class GalaxyError(Exception):
    """Base class of every error this project raises on purpose."""


class ModelError(GalaxyError):
    """A model cannot be loaded or mapped into the engine."""


class UnsupportedModel(ModelError):
    """The architecture, or one of its options, is not implemented by the engine."""


class ModelNotAvailable(ModelError):
    """The model name is neither an alias, a local folder, nor cached for offline use."""


class WeightMismatch(ModelError):
    """A source weight is missing, unexpected, or has the wrong shape."""


class PlanError(GalaxyError):
    """A parallel plan that cannot run: shares that do not add up, empty shares, bad strategy."""


class CommError(GalaxyError):
    """A collective or point-to-point transfer failed."""


class WorkerLost(CommError):
    """A peer stopped answering or closed its connection."""

    def __init__(self, peer: str, detail: str = "") -> None:
        self.peer = peer
        super().__init__(f"lost worker {peer}" + (f": {detail}" if detail else ""))


class CommTimeout(CommError):
    """A collective or receive did not complete before its deadline."""
