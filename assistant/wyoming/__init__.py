"""Wyoming: the gateway's voice stages for Home Assistant and Wyoming satellites.

Home Assistant talks to local voice services over the Wyoming protocol (JSON event headers,
optional data and binary payloads, over TCP). The gateway serves its own pipeline that way,
with the models already loaded for the HTTP routes: speech-to-text, text-to-speech, intent
recognition, and handling (the home acts or the assistant answers). `server.py` listens and
announces; `handler.py` answers one connection (the event table is there); `info.py` says what
is offered; `framing.py` reads events with limits; `recording.py` converts the client's audio;
`synthesis.py` streams the reply's audio sentence by sentence.
"""

from assistant.wyoming.server import WyomingServer, start_wyoming

__all__ = ["WyomingServer", "start_wyoming"]
