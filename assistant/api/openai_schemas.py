"""The bodies of the OpenAI-compatible routes (routes/openai.py), as OpenAI's API defines them.

Requests refuse what the gateway cannot honour rather than ignore it: an unknown field (as
OpenAI answers "Unrecognized request argument"), tools and functions, `n` > 1, log
probabilities, a response format other than text, non-zero penalties or logit biases. Each
refusal is a validation error located at the field, which assistant/api/errors.py turns into
OpenAI's 400 with that field as `param`. Fields that change nothing here are accepted and
ignored: `user`, `metadata`, `store`, `service_tier`, `parallel_tool_calls`, zero penalties,
`stream_options` other than `include_usage`. Non-finite numbers and strings that are not valid
Unicode (a lone surrogate sent as `\\ud800`) are refused here too, before any tokenizer sees
them.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

MAX_MESSAGES = 100
MAX_STOPS = 4  # as OpenAI
MAX_EMBED_INPUTS = 256


def _unicode(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"invalid Unicode at character {exc.start} (a lone surrogate); send UTF-8 text"
        ) from None
    return text


Text = Annotated[str, AfterValidator(_unicode)]
Stop = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_unicode)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextPart(Strict):
    type: Literal["text"]
    text: Text


def _nothing_asked(value: Any, info: ValidationInfo) -> Any:
    """Fields of features this gateway does not have pass only when they ask for nothing."""
    if value in (None, False, [], {}, "none"):
        return value
    raise ValueError(
        f"{info.field_name} is not supported by this gateway (no tools, no log probabilities)"
    )


class Message(Strict):
    """One chat message. `developer` is OpenAI's new name for `system`; `name` is ignored, as
    are the empty fields a client copies from an answer it puts back into the history."""

    role: Literal["system", "developer", "user", "assistant"]
    content: Text | list[TextPart]
    name: str | None = Field(default=None, max_length=64)
    refusal: None = None
    tool_calls: list[Any] | None = None
    function_call: Any = None
    audio: None = None
    annotations: list[Any] | None = None

    _unsupported = field_validator("tool_calls", "function_call")(_nothing_asked)

    @field_validator("role", mode="before")
    @classmethod
    def _known_role(cls, role: Any) -> Any:
        if role in ("tool", "function"):
            raise ValueError(f"{role!r} messages are not supported: this API has no tools")
        return role

    @field_validator("content", mode="before")
    @classmethod
    def _text_only(cls, content: Any) -> Any:
        if isinstance(content, list):
            for part in content:
                kind = part.get("type") if isinstance(part, dict) else None
                if kind is not None and kind != "text":
                    raise ValueError(f"content parts of type {kind!r} are not supported; send text")
        return content

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.content)

    def as_chat(self) -> dict[str, str]:
        role = "system" if self.role == "developer" else self.role
        return {"role": role, "content": self.text()}


class StreamOptions(Strict):
    include_usage: bool = False
    include_obfuscation: bool | None = None  # OpenAI's padding against size side channels


class ResponseFormat(BaseModel):
    type: str

    @field_validator("type")
    @classmethod
    def _text(cls, kind: str) -> str:
        if kind != "text":
            raise ValueError(f"response_format {kind!r} is not supported; only 'text' is")
        return kind


class ChatCompletionRequest(Strict):
    """`POST /v1/chat/completions`. Absent `temperature` means greedy decoding (see the
    route's docstring); absent `max_tokens` means the gateway's `max_new_tokens`."""

    model: Text = Field(max_length=200, examples=["smollm2-135m", "galaxy-assist"])
    messages: list[Message] = Field(
        min_length=1,
        max_length=MAX_MESSAGES,
        examples=[[{"role": "user", "content": "turn on the kitchen lights"}]],
    )
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: Finite | None = Field(default=None, ge=0.0, le=2.0)
    top_p: Finite | None = Field(default=None, ge=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: Stop | list[Stop] | None = None
    seed: int | None = Field(default=None, ge=-(2**63), le=2**64 - 1)
    n: int | None = Field(default=None, ge=1)
    # Accepted when they ask for nothing (OpenAI clients send some of them by default).
    presence_penalty: Finite | None = None
    frequency_penalty: Finite | None = None
    logit_bias: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None
    functions: list[Any] | None = None
    function_call: Any = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    user: str | None = Field(default=None, max_length=256)
    metadata: dict[str, str] | None = None
    store: bool | None = None
    service_tier: str | None = Field(default=None, max_length=32)

    @field_validator("n")
    @classmethod
    def _one_choice(cls, n: int | None) -> int | None:
        if n is not None and n > 1:
            raise ValueError(f"n={n} is not supported: this gateway answers one choice (n=1)")
        return n

    @field_validator("stop")
    @classmethod
    def _stops(cls, stop: str | list[str] | None) -> str | list[str] | None:
        stops = [stop] if isinstance(stop, str) else stop or []
        if len(stops) > MAX_STOPS:
            raise ValueError(f"{len(stops)} stop strings; at most {MAX_STOPS}")
        return stop

    @field_validator("presence_penalty", "frequency_penalty")
    @classmethod
    def _no_penalty(cls, value: float | None) -> float | None:
        if value:
            raise ValueError("penalties are not supported by this gateway; send 0 or omit it")
        return value

    _unsupported = field_validator(
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "tools",
        "tool_choice",
        "functions",
        "function_call",
    )(_nothing_asked)

    def stop_list(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class EmbeddingRequest(Strict):
    """`POST /v1/embeddings`: text only (token-id arrays are refused), float or base64
    (little-endian float32, what the openai client asks for by default)."""

    model: Text = Field(max_length=200, examples=["minilm"])
    input: Text | list[Text] = Field(union_mode="left_to_right", examples=["the porch light"])
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = Field(default=None, max_length=256)

    @field_validator("input", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> Any:
        items = value if isinstance(value, list) else [value]
        if any(isinstance(i, int | list) for i in items):
            raise ValueError("token ids are not supported as input; send the text")
        if isinstance(value, list) and not 1 <= len(value) <= MAX_EMBED_INPUTS:
            raise ValueError(f"{len(value)} inputs; send 1 to {MAX_EMBED_INPUTS}")
        for i, text in enumerate(items):
            if isinstance(text, str) and not text.strip():
                raise ValueError(f"input {i} is empty")
        return value

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


# ----- responses (OpenAI's shapes; extra keys would be kept by clients, none are added) -----


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int

    @classmethod
    def of(cls, prompt: int, completion: int = 0) -> Usage:
        return cls(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        )


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "galaxy-home"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    refusal: None = None


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: None = None


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str

    @classmethod
    def of(cls, index: int, vector: np.ndarray, encoding: str) -> EmbeddingItem:
        if encoding == "base64":  # little-endian float32, as OpenAI sends it
            return cls(
                index=index, embedding=base64.b64encode(vector.astype("<f4").tobytes()).decode()
            )
        return cls(index=index, embedding=[float(x) for x in vector])


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: Usage


def completion_chunk(
    id: str, created: int, model: str, delta: dict[str, Any], finish: str | None = None
) -> dict[str, Any]:
    """One `chat.completion.chunk` event of a streamed answer."""
    return {
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
