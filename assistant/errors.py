"""Exceptions raised by the gateway; the engine's own (edge_worker/errors.py) sit beside them
under the same root, so one `except GalaxyError` sees both.

GalaxyError                          (edge_worker.errors)
 +-- GatewayError                    anything the gateway itself refuses or fails at
 |    +-- Retryable                  the same request may work after `retry_after_s`
 |    |    +-- Unavailable           transient trouble of the gateway or the cluster (503)
 |    |    |    +-- QueueFull        too many requests waiting for the cluster
 |    |    |    +-- DeadlineExceeded no answer (even with failover) before the deadline
 |    |    +-- RateLimited           one source asked too often (429)
 |    |         +-- PairingRateLimited
 |    +-- BadRequest                 permanent: the same request will fail again (4xx)
 |    |    +-- UnknownModel          a model that is not served here
 |    |    +-- TooLarge              a text, body or recording past the configured limit
 |    |    +-- InvalidInput          a value the gateway cannot act on
 |    |    +-- PairingRefused        a pairing run that does not prove the code (403)
 |    |    +-- HomeError             the home refuses an action
 |    |    |    +-- UnknownDevice    no such device (or area) in the home
 |    |    |    +-- InvalidAction    an attribute or value this device does not take
 |    |    +-- AudioError            audio the gateway cannot hear
 |    |         +-- UnsupportedAudio not audio, or a format no decoder here reads
 |    |         +-- EmptyAudio       no samples at all
 |    +-- HomeFileError              the home file does not parse (at start-up, with its line)
 +-- ModelError, PlanError, CommError   (edge_worker.errors)

The HTTP layer (assistant/api/errors.py) maps these once: `Unavailable` and the engine's
`CommError` answer 503 with Retry-After, `RateLimited` 429 with Retry-After; every permanent
error a 4xx with its message.
"""

from __future__ import annotations

from edge_worker.errors import GalaxyError


class GatewayError(GalaxyError):
    """Base class of the gateway's own errors."""


class Retryable(GatewayError):
    """The same request may succeed after `retry_after_s` seconds."""

    retry_after_s: float = 5.0

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        if retry_after_s is not None:
            self.retry_after_s = retry_after_s


class Unavailable(Retryable):
    """A transient condition of the gateway or the cluster."""


class QueueFull(Unavailable):
    """Too many requests are waiting for the cluster."""

    retry_after_s = 2.0


class DeadlineExceeded(Unavailable):
    """The request could not finish (even with failover) before its deadline."""


class RateLimited(Retryable):
    """One source asked too often."""


class PairingRateLimited(RateLimited):
    """Too many pairing attempts from one address: wait before trying again."""


class BadRequest(GatewayError):
    """A permanent refusal: the request itself is wrong and would fail again."""


class UnknownModel(BadRequest):
    """A model name this gateway does not serve (or not on this route)."""


class TooLarge(BadRequest):
    """A text, body or recording past the gateway's configured limit."""


class InvalidInput(BadRequest):
    """A value the gateway cannot act on (e.g. a limit past the configured maximum)."""


class PairingRefused(BadRequest):
    """A pairing run that does not prove knowledge of the code, or names no live code."""


class HomeError(BadRequest):
    """The home refuses an action."""


class UnknownDevice(HomeError):
    """No such device or area in the home."""


class InvalidAction(HomeError):
    """An attribute or value this device does not take (a sensor is read-only, brightness is
    0-100, ...)."""


class AudioError(BadRequest):
    """Audio the gateway cannot hear."""


class UnsupportedAudio(AudioError):
    """Not audio, or an encoding no decoder here reads."""


class EmptyAudio(AudioError):
    """A recording with no samples."""


class HomeFileError(GatewayError):
    """The home file does not parse or is inconsistent; the message names the line."""
