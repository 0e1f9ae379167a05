"""Gateway settings: every option is also an environment variable `GALAXY_<NAME>`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GALAXY_", extra="ignore")

    host: str = Field("127.0.0.1", description="address of the HTTP API and dashboard")
    port: int = Field(8000, ge=0, le=65535, description="HTTP API port (0: any free port)")
    worker_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="TLS websocket port for workers (0: a free port, chosen on the first start "
        "and kept in the data dir, so paired workers find it again after a restart)",
    )
    data_dir: Path = Field(
        Path("~/.local/share/galaxy-home/gateway"), description="home CA, database, shards"
    )
    home_name: str = Field("Galaxy Home", description="shown in mDNS records and the dashboard")
    allow_loopback_without_token: bool = Field(
        False, description="let requests from 127.0.0.1 use the API without a token"
    )
    generate_model: str = Field("smollm2-135m", description="model behind /v1/generate")
    embed_model: str = Field("minilm", description="model behind /v1/embed")
    strategy: str = Field(
        "auto", description="auto (the planner chooses) or a fixed hmp | tp | sp | pp | local"
    )
    lossy_wire: Literal["off", "fp16", "int8"] = Field(
        "off",
        description="most lossy format the planner may send activations in: off (fp32), fp16, "
        "or int8 (a scale per 32 values; partial sums fp16). Errors: DESIGN.md section 6",
    )
    queue_size: int = Field(8, ge=1, description="requests waiting or running before 503")
    standby: bool = Field(
        True,
        description="keep a plan deployed ahead for the loss of each device, where memory "
        "allows: a lost device's requests switch to it at once",
    )
    request_timeout_s: float = Field(120.0, gt=0, description="deadline of one request")
    max_text_chars: int = Field(8000, ge=1, description="longest prompt or text accepted")
    max_new_tokens: int = Field(256, ge=1, description="upper limit for max_new_tokens")
    mdns_interfaces: list[str] = Field(
        default_factory=lambda: ["127.0.0.1"],
        description='interfaces zeroconf uses (["all"] for every interface)',
    )
    link_mbps: float = Field(1000.0, gt=0, description="assumed link speed until measured")
    link_check_s: float = Field(
        300.0,
        gt=0,
        description="re-measure links this often (and at once when a request's ring slowed); "
        "re-plan when one changed >30% (strategy auto)",
    )

    device_cert_days: int = Field(
        825, ge=1, le=3650, description="validity of a device's certificate; renewed near its end"
    )
    # ----- the home (assistant/home) -----
    home_file: Path | None = Field(
        None, description="YAML file of the home's areas and devices (none: an empty home)"
    )
    ha_url: str | None = Field(
        None, description="Home Assistant base URL; with ha_token, actions are forwarded to it"
    )
    ha_token: str | None = Field(None, description="Home Assistant long-lived access token")
    # ----- voice (assistant/voice) -----
    max_audio_s: float = Field(30.0, gt=0, description="longest recording accepted (seconds)")
    max_upload_mb: float = Field(16.0, gt=0, description="largest audio upload accepted (MB)")
    stt_model: str = Field(
        "packaged",
        description="faster-whisper model: packaged (Whisper tiny.en), or a local model folder",
    )
    stt_compute_type: str = Field("int8", description="faster-whisper compute type")
    tts_voice: str = Field(
        "packaged", description="piper voice: packaged (joe, en_US), or a local .onnx voice file"
    )
    wake_word: str | None = Field(
        None, description="wake word for streamed audio (okay_nabu, hey_jarvis, ...); none: off"
    )
    reply_max_tokens: int = Field(
        60, ge=1, le=1024, description="longest conversational reply, in tokens"
    )
    cache_dir: Path = Field(
        default_factory=lambda: Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "galaxy-home",
        description="converted models and the trained intent classifier (safe to delete)",
    )
    intent_threshold: float = Field(
        0.6, ge=0, le=1, description="classifier confidence needed to act; below: conversation"
    )

    # ----- Wyoming (assistant/wyoming) and /metrics -----
    wyoming: bool = Field(
        False, description="serve the voice stages to Home Assistant over the Wyoming protocol"
    )
    wyoming_host: str | None = Field(
        None, description="address of the Wyoming server (none: the HTTP API's host)"
    )
    wyoming_port: int = Field(
        10300, ge=0, le=65535, description="Wyoming server port (0: any free port)"
    )
    metrics_require_token: bool = Field(
        True, description="GET /metrics needs the API token like every other route"
    )

    def resolved_data_dir(self) -> Path:
        path = self.data_dir.expanduser()
        path.mkdir(parents=True, exist_ok=True)
        return path
