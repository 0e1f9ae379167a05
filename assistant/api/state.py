"""Everything the routes share, built by the app's lifespan (see assistant/main.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from assistant.cluster.coordinator import Coordinator
from assistant.cluster.manager import ClusterManager
from assistant.config import Settings
from assistant.home.actions import HomeService
from assistant.store import Store
from assistant.trust.ca import HomeCA
from assistant.trust.pairing import PairingCodes
from assistant.trust.pake import PakeSessions
from assistant.voice.pipeline import VoiceAssistant


@dataclass
class GatewayState:
    settings: Settings
    store: Store
    ca: HomeCA
    codes: PairingCodes
    coordinator: Coordinator
    manager: ClusterManager
    discovery: Any = None  # GatewayDiscovery when mDNS is running
    first_token: str | None = None  # the API token made at first start (shown once)
    home: HomeService | None = None  # the household's devices, state and timers
    voice: VoiceAssistant | None = None  # speech, intents, conversation (ready once started)
    pake: PakeSessions = field(default_factory=PakeSessions)  # pairing-by-code runs
    extras: dict[str, Any] = field(default_factory=dict)
