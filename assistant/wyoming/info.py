"""What the gateway offers over Wyoming: the `info` answer to `describe`.

Four programs, each with the model behind it, installed and in English (Home Assistant lists
the languages it sees here): speech-to-text (faster-whisper with the configured Whisper model),
text-to-speech (the piper voice, or espeak-ng when piper could not load it), intent recognition
(HA's templates, then the MiniLM classifier on the cluster) and handling (the home acts, or
SmolLM2 on the cluster answers; `supports_home_control`).
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from wyoming.info import (
    AsrModel,
    AsrProgram,
    Attribution,
    HandleModel,
    HandleProgram,
    Info,
    IntentModel,
    IntentProgram,
    TtsProgram,
    TtsVoice,
)

from assistant.config import Settings
from assistant.voice.pipeline import VoiceAssistant

GALAXY = Attribution(name="Galaxy Home", url="https://arxiv.org/abs/2405.17245")
WHISPER = Attribution(
    name="OpenAI (faster-whisper by SYSTRAN)", url="https://github.com/SYSTRAN/faster-whisper"
)
PIPER = Attribution(name="Rhasspy (piper)", url="https://github.com/rhasspy/piper")
ESPEAK = Attribution(name="eSpeak NG", url="https://github.com/espeak-ng/espeak-ng")
INTENTS = Attribution(
    name="Home Assistant (hassil, home-assistant-intents)",
    url="https://github.com/home-assistant/intents",
)
LANGUAGES = ["en"]


def version() -> str:
    try:
        return metadata.version("galaxy-home")
    except metadata.PackageNotFoundError:
        return "0"


def stt_model_name(settings: Settings) -> str:
    return "whisper-tiny.en" if settings.stt_model == "packaged" else Path(settings.stt_model).name


def tts_voice_name(settings: Settings, voice: VoiceAssistant) -> tuple[str, Attribution]:
    engine = voice.tts.engine.name if voice.tts is not None else ""
    if engine.startswith("espeak"):
        return "espeak-ng en-us", ESPEAK
    if settings.tts_voice == "packaged":
        return "en_US-joe-medium", PIPER
    return Path(settings.tts_voice).stem, PIPER


def describe(settings: Settings, voice: VoiceAssistant) -> Info:
    ours = version()
    stt_name = stt_model_name(settings)
    voice_name, voice_by = tts_voice_name(settings, voice)
    intent_model = (
        f"templates + {settings.embed_model} classifier (on the cluster)"
        if settings.embed_model
        else "templates"
    )
    return Info(
        asr=[
            AsrProgram(
                name="galaxy-stt",
                description="Galaxy Home speech-to-text (faster-whisper on the gateway)",
                attribution=GALAXY,
                installed=True,
                version=ours,
                models=[
                    AsrModel(
                        name=stt_name,
                        description=f"Whisper {stt_name}",
                        attribution=WHISPER,
                        installed=True,
                        version=None,
                        languages=LANGUAGES,
                    )
                ],
            )
        ],
        tts=[
            TtsProgram(
                name="galaxy-tts",
                description="Galaxy Home text-to-speech, sentence by sentence",
                attribution=GALAXY,
                installed=True,
                version=ours,
                voices=[
                    TtsVoice(
                        name=voice_name,
                        description=voice_name,
                        attribution=voice_by,
                        installed=True,
                        version=None,
                        languages=["en_US", *LANGUAGES],
                    )
                ],
                supports_synthesize_streaming=True,
            )
        ],
        intent=[
            IntentProgram(
                name="galaxy-intent",
                description="Galaxy Home intent recognition (Home Assistant's intent names)",
                attribution=GALAXY,
                installed=True,
                version=ours,
                models=[
                    IntentModel(
                        name=intent_model,
                        description=intent_model,
                        attribution=INTENTS,
                        installed=True,
                        version=None,
                        languages=LANGUAGES,
                    )
                ],
            )
        ],
        handle=[
            HandleProgram(
                name="galaxy-assistant",
                description="Galaxy Home: the home acts on a command, or "
                f"{settings.generate_model} answers across the home's devices",
                attribution=GALAXY,
                installed=True,
                version=ours,
                models=[
                    HandleModel(
                        name=settings.generate_model,
                        description=f"the home's devices, then {settings.generate_model}",
                        attribution=GALAXY,
                        installed=True,
                        version=None,
                        languages=LANGUAGES,
                    )
                ],
                supports_home_control=True,
            )
        ],
    )
