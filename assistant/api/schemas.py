"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_TEXT = 8000  # characters; the gateway setting max_text_chars may lower it


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChatMessage(Strict):
    role: Literal["system", "user", "assistant"]
    content: str = Field(min_length=1, max_length=MAX_TEXT)


class GenerateRequest(Strict):
    model: str | None = Field(default=None, max_length=200, description="default: the gateway's")
    prompt: str | None = Field(default=None, min_length=1, max_length=MAX_TEXT)
    messages: list[ChatMessage] | None = Field(default=None, min_length=1, max_length=32)
    max_new_tokens: int = Field(default=64, ge=1, le=1024)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="0: greedy")
    top_k: int = Field(default=0, ge=0, le=1000)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)

    @model_validator(mode="after")
    def _one_input(self) -> GenerateRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of 'prompt' or 'messages'")
        return self


class GenerateResponse(BaseModel):
    model: str
    text: str
    tokens: list[int]
    finish_reason: Literal["stop", "length"]
    timings: dict[str, Any]
    plan: dict[str, Any]


class EmbedRequest(Strict):
    model: str | None = Field(default=None, max_length=200, description="default: the gateway's")
    texts: list[str] = Field(min_length=1, max_length=32)

    @model_validator(mode="after")
    def _sizes(self) -> EmbedRequest:
        for i, t in enumerate(self.texts):
            if not t.strip():
                raise ValueError(f"texts[{i}] is empty")
            if len(t) > MAX_TEXT:
                raise ValueError(f"texts[{i}] has {len(t)} characters; the limit is {MAX_TEXT}")
        return self


class EmbedResponse(BaseModel):
    model: str
    embeddings: list[list[float]]
    dimensions: int
    timings: dict[str, Any]
    plan: dict[str, Any]


class DeviceOut(BaseModel):
    name: str
    paired: bool
    revoked: bool
    online: bool
    paired_at: float | None = None
    last_seen: float | None = None
    profile: dict[str, Any] = {}


class PairingCodeOut(BaseModel):
    code: str
    expires_in_s: float
    ca_fingerprint: str


class PakeStart(Strict):
    code_id: str = Field(min_length=2, max_length=2, description="the code's first 2 characters")
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    msg_a: str = Field(min_length=8, max_length=200, description="SPAKE2 A message, base64")


class PakeStarted(BaseModel):
    session: str
    msg_b: str  # base64
    ca: str  # the home CA (PEM): trusted only once the proof holds
    worker_url: str
    proof: str  # HMAC under the SPAKE2 key over the transcript (edge_worker/spec/pairing.py)


class PakeFinish(Strict):
    csr: str = Field(min_length=64, max_length=8000)
    proof: str = Field(min_length=64, max_length=64)


class PairingRequestIn(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    csr: str = Field(min_length=64, max_length=8000)


class Credentials(BaseModel):
    name: str
    cert: str
    ca: str
    ca_fingerprint: str
    worker_url: str


class PairingRequestOut(BaseModel):
    id: str
    name: str
    status: Literal["pending", "approved", "denied"]
    credentials: Credentials | None = None
