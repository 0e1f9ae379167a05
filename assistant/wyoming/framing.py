"""Reading Wyoming events from a client we do not trust, with limits.

An event is a JSON header line (`{"type", "data"?, "data_length"?, "payload_length"?}`), then
`data_length` bytes of JSON merged into `data`, then `payload_length` bytes of payload. The
`wyoming` package's own reader ends the connection silently on anything malformed and reads
any length it is told; here:

- a header that is not a JSON object with a string `type`, or extra data that is not a JSON
  object, or JSON the gateway does not take (a non-finite number, a lone surrogate in a string,
  deep nesting: assistant/strict_json.py): `BadEvent`. The framing is intact (the line, and any
  lengths it announced, were consumed), so the connection can go on with the next event;
- a header line over `MAX_HEADER` bytes, a length that is not a non-negative integer, or more
  data or payload than the limits: `BrokenStream`. What follows cannot be found (or should not
  be read), so the connection must end after saying why.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from wyoming.event import Event

from assistant.strict_json import decode_json

MAX_HEADER = 64 * 1024  # the StreamReader's line limit (bytes); set on the server
MAX_DATA = 1 << 20  # extra JSON data of one event (bytes)


class ProtocolError(Exception):
    """A client's event the server cannot read; `code` goes out in the `error` event."""

    def __init__(self, message: str, code: str = "bad_event") -> None:
        super().__init__(message)
        self.code = code


class BadEvent(ProtocolError):
    """One malformed event; the next one can be read."""


class BrokenStream(ProtocolError):
    """The stream cannot (or must not) be read further."""


async def read_event(reader: asyncio.StreamReader, max_payload: int) -> Event | None:
    """The next event, or None when the client closed the connection (also mid-event).
    Raises `BadEvent` or `BrokenStream` (see the module docstring)."""
    try:
        line = await reader.readline()
    except ValueError:  # asyncio: the line is longer than the reader's limit
        raise BrokenStream(
            f"an event header longer than {MAX_HEADER // 1024} KiB: put data in the "
            "event's data or payload",
            "too_large",
        ) from None
    except ConnectionError:
        return None
    if not line.endswith(b"\n"):
        return None  # closed, with or without a partial line
    header = _json_object(line, "the event header")
    data_length = _length(header, "data_length", MAX_DATA)
    payload_length = _length(header, "payload_length", max_payload)
    try:
        extra = await reader.readexactly(data_length) if data_length else b""
        payload = await reader.readexactly(payload_length) if payload_length else None
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    kind = header.get("type")
    if not isinstance(kind, str) or not kind:
        raise BadEvent('the event header has no "type" (a string such as "describe")')
    data = header.get("data") if header.get("data") is not None else {}
    if not isinstance(data, dict):
        raise BadEvent(f'the "data" of a {kind} event is not a JSON object')
    if extra:
        data = {**data, **_json_object(extra, f"the data of a {kind} event")}
    return Event(type=kind, data=data, payload=payload)


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = decode_json(raw, what)
    except json.JSONDecodeError as exc:
        raise BadEvent(f"{what} is not JSON the gateway takes: {exc.msg} ({raw[:80]!r})") from None
    if not isinstance(value, dict):
        raise BadEvent(f"{what} is not a JSON object")
    return value


def _length(header: dict[str, Any], key: str, limit: int) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BrokenStream(f"{key} is {value!r}, not a byte count")
    if value > limit:
        raise BrokenStream(
            f"{key} of {value} bytes is over this server's limit of {limit} bytes "
            "(GALAXY_MAX_UPLOAD_MB for audio): send audio in smaller chunks",
            "too_large",
        )
    return value
