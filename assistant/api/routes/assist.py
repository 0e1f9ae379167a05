"""The voice assistant over HTTP: a sentence or a recording in, the home acts, a spoken reply.

- `POST /v1/assist` `{"text": ...}`;
- `POST /v1/assist/audio`: the recording as the raw body (`Content-Type: audio/wav`, FLAC, OGG,
  or `audio/L16;rate=16000` for raw 16-bit PCM) or as the multipart field `audio`;
- `GET /v1/audio/{request_id}.wav`: the spoken reply, kept for ten minutes.

Both assist routes answer the same `Turn` (request id, transcript, intent, changes, reply text
and audio URL, per-stage timings, the plan of the cluster work). Bad audio is a 4xx that says
why (assistant/voice/audio.py); the size limit is checked before the body is read.
`WS /v1/assist/stream` is in stream.py.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from assistant.api.deps import Authorized, StateDep
from assistant.api.guard import GuardedRoute
from assistant.api.state import GatewayState
from assistant.errors import InvalidInput, TooLarge, Unavailable, UnsupportedAudio
from assistant.voice.audio import decode
from assistant.voice.pipeline import Turn, VoiceAssistant

router = APIRouter(tags=["assist"], route_class=GuardedRoute)


def get_voice(state: StateDep) -> VoiceAssistant:
    if state.voice is None or state.voice.tts is None:
        raise Unavailable("the voice pipeline is still loading; retry in a moment", 2.0)
    return state.voice


VoiceDep = Annotated[VoiceAssistant, Depends(get_voice)]


class AssistRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=2000)
    speak: bool = Field(default=True, description="synthesise the reply's audio")


def record(state: GatewayState, turn: Turn) -> dict[str, Any]:
    state.store.log_request(
        "assist",
        str((turn.intent or {}).get("source") or "none"),
        "ok",
        turn.timings,
        turn.plan,
    )
    return turn.to_dict()


@router.post("/assist")
async def assist(body: AssistRequest, state: StateDep, voice: VoiceDep, _: Authorized) -> Any:
    """A sentence to act on or answer."""
    if not body.text.strip():
        raise InvalidInput("the text is blank: say something")
    return record(state, await voice.text_turn(body.text.strip(), speak=body.speak))


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it passes `limit` bytes (Content-Length first)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(
            f"the upload is {int(declared) / 2**20:.1f} MB; the limit is "
            f"{limit / 2**20:.1f} MB (GALAXY_MAX_UPLOAD_MB)"
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise TooLarge(
                f"the upload is over the {limit / 2**20:.1f} MB limit (GALAXY_MAX_UPLOAD_MB)"
            )
    return bytes(body)


async def uploaded_audio(request: Request, limit: int) -> tuple[bytes, str | None]:
    """(audio bytes, their content type) from a raw body or the multipart field `audio`."""
    content_type = request.headers.get("content-type")
    if content_type and content_type.startswith("multipart/form-data"):
        declared = request.headers.get("content-length")
        if declared is None or not declared.isdigit() or int(declared) > limit + 64 * 1024:
            raise TooLarge(
                f"a multipart upload needs a Content-Length within the "
                f"{limit / 2**20:.1f} MB limit (GALAXY_MAX_UPLOAD_MB)"
            )
        form = await request.form(max_files=1, max_fields=4)
        field = form.get("audio")
        if field is None or isinstance(field, str):
            raise UnsupportedAudio("the multipart upload has no file field named 'audio'")
        return await field.read(), field.content_type
    return await read_limited(request, limit), content_type


@router.post(
    "/assist/audio",
    openapi_extra={
        "requestBody": {
            "content": {
                "audio/wav": {"schema": {"type": "string", "format": "binary"}},
                "audio/L16;rate=16000": {"schema": {"type": "string", "format": "binary"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"audio": {"type": "string", "format": "binary"}},
                    }
                },
            }
        }
    },
)
async def assist_audio(request: Request, state: StateDep, voice: VoiceDep, _: Authorized) -> Any:
    """A recording to transcribe, act on or answer."""
    limit = int(state.settings.max_upload_mb * 2**20)
    data, content_type = await uploaded_audio(request, limit)
    decoded = decode(data, content_type, state.settings.max_audio_s, limit)
    return record(state, await voice.audio_turn(decoded.samples))


@router.get(
    "/audio/{request_id}.wav",
    response_class=Response,
    responses={200: {"content": {"audio/wav": {}}}, 404: {"description": "expired or unknown"}},
)
async def reply_audio(
    request_id: Annotated[str, Path(pattern=r"^[0-9a-f]{16}$")], voice: VoiceDep, _: Authorized
) -> Response:
    wav = voice.replies.get(request_id)
    if wav is None:
        raise HTTPException(404, detail=f"no reply audio for {request_id} (kept 10 minutes)")
    return Response(wav, media_type="audio/wav")
