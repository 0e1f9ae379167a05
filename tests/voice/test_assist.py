"""The whole voice turn through a real gateway with two real worker processes and the sample
home: speech synthesised here by piper, transcribed by Whisper, acted on by the home, answered
in speech; the classifier's MiniLM and the conversation's SmolLM2 run across the workers."""

from __future__ import annotations

import io
import json
import threading
import time
import urllib.request
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from websockets.sync.client import connect

from assistant.home.loader import sample_home_path
from assistant.launcher import RunningGateway
from assistant.voice import conversation
from assistant.voice.audio import to_wav
from tests.gateway.conftest import gateway_settings
from tests.gateway.test_api import reference
from tests.voice.speech import padded, pcm, silence, words

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    root = tmp_path_factory.mktemp("voice")
    settings = gateway_settings(
        root, home_file=sample_home_path(), max_new_tokens=256, max_audio_s=8, max_upload_mb=1
    )
    with RunningGateway(settings) as gw:
        gw.add_workers(["kitchen-pi", "laptop"], root / "workers")
        gw.wait_online(["kitchen-pi", "laptop"])
        deadline = time.monotonic() + 300  # the served models are deployed before any request
        while set(gw.call("GET", "/v1/plan")["plans"]) != {"minilm", "smollm2-135m"}:
            assert time.monotonic() < deadline, "the models were never deployed"
            time.sleep(0.5)
        yield gw


def post_audio(
    gw: RunningGateway, body: bytes, content_type: str = "audio/wav"
) -> tuple[int, dict[str, Any]]:
    """POST `body` to /v1/assist/audio. httpx reads the answer even when the gateway refuses an
    upload by its Content-Length and closes before the body is all sent (413), as curl does."""
    headers = {"Content-Type": content_type, "Authorization": f"Bearer {gw.token}"}
    resp = httpx.post(gw.url + "/v1/assist/audio", content=body, headers=headers, timeout=300)
    return resp.status_code, resp.json() if resp.content else {}


def get_bytes(gw: RunningGateway, path: str) -> bytes:
    req = urllib.request.Request(gw.url + path)
    req.add_header("Authorization", f"Bearer {gw.token}")
    with urllib.request.urlopen(req, timeout=60) as resp:
        return bytes(resp.read())


def device(gw: RunningGateway, device_id: str) -> dict[str, Any]:
    devices = gw.call("GET", "/v1/home")["devices"]
    return dict(next(d for d in devices if d["id"] == device_id)["state"])


def reference_reply(gw: RunningGateway, text: str) -> str:
    """What SmolLM2 itself (Hugging Face, one device, greedy) answers to the prompt the
    assistant builds for `text`."""
    assert gw.state.home is not None
    tok, model = reference("smollm2-135m").tokenizer, reference("smollm2-135m").model
    assert tok is not None
    prompt = tok.apply_chat_template(
        conversation.messages(gw.state.home, text), tokenize=False, add_generation_prompt=True
    )
    ids = torch.tensor([tok(prompt, add_special_tokens=False)["input_ids"]])
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=gw.settings.reply_max_tokens,
            do_sample=False,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.eos_token_id,
        )
    return str(tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)).strip()


def wav_of(text: str) -> bytes:
    return to_wav(padded(text), 16000)


def test_a_spoken_command_turns_the_kitchen_light_on_and_answers_in_speech(
    home: RunningGateway,
) -> None:
    home.call("POST", "/v1/home/devices/light.kitchen_ceiling", {"on": False})

    status, turn = post_audio(home, wav_of("turn on the kitchen lights"))

    assert status == 200, turn
    assert words(turn["transcript"]) == ["turn", "on", "the", "kitchen", "lights"]
    assert turn["intent"]["name"] == "HassTurnOn" and turn["intent"]["source"] == "templates"
    assert {"device": "light.kitchen_ceiling", "attribute": "on", "old": False, "new": True} in (
        turn["changes"]
    )
    assert device(home, "light.kitchen_ceiling")["on"] is True
    assert set(turn["timings"]) >= {"stt_ms", "intent_ms", "cluster_ms", "tts_ms", "total_ms"}
    with wave.open(io.BytesIO(get_bytes(home, turn["reply"]["audio_url"]))) as reply:
        assert reply.getnframes() > reply.getframerate() // 2  # half a second of speech at least


def test_a_command_whisper_misreads_is_read_from_its_alternatives(home: RunningGateway) -> None:
    """Whisper tiny.en, primed with the sample home's words, reads piper's "turn on the hall
    light" as "Turn on the whole light." first and the right words second."""
    home.call("POST", "/v1/home/devices/light.hall", {"on": False})

    status, turn = post_audio(home, wav_of("turn on the hall light"))

    assert status == 200, turn
    assert words(turn["heard"]["first_guess"]) == ["turn", "on", "the", "whole", "light"]
    assert words(turn["transcript"]) == ["turn", "on", "the", "hall", "light"]
    assert turn["intent"]["name"] == "HassTurnOn" and turn["intent"]["source"] == "templates"
    assert device(home, "light.hall")["on"] is True


def test_a_paraphrase_is_recognised_by_the_classifier_on_both_workers(
    home: RunningGateway,
) -> None:
    home.call("POST", "/v1/home/devices/light.kitchen_ceiling", {"on": True, "brightness": 50})

    turn = home.call("POST", "/v1/assist", {"text": "could you make the kitchen a bit brighter"})

    assert turn["intent"]["name"] == "HassLightSet"
    assert turn["intent"]["source"] == "classifier"
    assert turn["intent"]["slots"]["area"] == "kitchen"
    assert turn["intent"]["slots"]["brightness_step"] > 0
    assert turn["plan"]["model"] == "minilm" and turn["plan"]["strategy"] == "hmp"
    assert sorted(turn["plan"]["devices"]) == ["kitchen-pi", "laptop"]
    assert device(home, "light.kitchen_ceiling")["brightness"] > 50


def test_an_open_question_is_answered_by_smollm2_across_the_cluster(home: RunningGateway) -> None:
    turn = home.call("POST", "/v1/assist", {"text": "What is the capital of France?"})

    assert turn["intent"]["source"] == "conversation" and turn["changes"] == []
    assert turn["reply"]["text"] == reference_reply(home, "What is the capital of France?")
    assert turn["plan"]["model"] == "smollm2-135m"
    assert sorted(turn["plan"]["devices"]) == ["kitchen-pi", "laptop"]


def test_the_stream_route_answers_a_streamed_command_with_events_and_audio(
    home: RunningGateway,
) -> None:
    home.call("POST", "/v1/home/devices/light.kitchen_ceiling", {"on": False})
    audio = pcm(np.concatenate([padded("turn on the kitchen lights"), silence(1.0)]))
    url = home.url.replace("http://", "ws://") + f"/v1/assist/stream?token={home.token}"
    events: list[str] = []
    audio_bytes = 0
    with connect(url, open_timeout=30) as ws:
        assert json.loads(ws.recv(30))["type"] == "ready"
        for i in range(0, len(audio), 3200):  # 0.1 s chunks, as a microphone sends them
            ws.send(audio[i : i + 3200])
        ws.send(json.dumps({"type": "end"}))
        while True:
            frame = ws.recv(120)
            if isinstance(frame, bytes):
                audio_bytes += len(frame)
                continue
            event = json.loads(frame)
            events.append(event["type"])
            if event["type"] == "transcript":
                assert "kitchen" in words(event["text"])
            if event["type"] == "done":
                assert event["timings"]["first_audio_ms"] > 0
                break

    assert events[:3] == ["vad_start", "vad_end", "transcript"]
    assert {"audio_start", "intent", "changes", "reply_text", "audio_end"} <= set(events)
    assert audio_bytes > 16000
    assert device(home, "light.kitchen_ceiling")["on"] is True


@pytest.mark.parametrize(
    ("body", "content_type", "status", "says"),
    [
        (b"this is plainly not audio at all, just words", "audio/wav", 415, "not audio"),
        (b"ID3\x04\x00\x00" + bytes(2000), "audio/mpeg", 415, "not supported"),
        (b"", "audio/wav", 422, "empty"),
        (to_wav(silence(9.0), 16000), "audio/wav", 413, "9.0 s"),
        (bytes(1_200_000), "audio/L16;rate=16000", 413, "limit"),
    ],
    ids=["not-audio", "mp3", "empty", "too-long", "too-large"],
)
def test_bad_audio_is_refused_with_its_reason_and_the_next_request_works(
    home: RunningGateway, body: bytes, content_type: str, status: int, says: str
) -> None:
    got, answer = post_audio(home, body, content_type)

    assert got == status, answer
    assert says in answer["detail"].lower()
    assert home.call("POST", "/v1/assist", {"text": "is the garage door open"})["reply"]["text"]


def test_a_command_during_a_long_generation_is_answered_before_it_ends(
    home: RunningGateway,
) -> None:
    """The generation holds the cluster step by step; the command (spoken, templates), a
    paraphrase (MiniLM on the cluster) and a question (SmolLM2, its own KV cache on the same
    workers) run between its decode steps."""
    result: dict[str, Any] = {}

    def long_generation() -> None:
        body = {"prompt": "Count from 1 to 300, separated by commas.", "max_new_tokens": 200}
        result["generation"] = home.call("POST", "/v1/generate", body)
        result["generation_done"] = time.monotonic()

    generation = threading.Thread(target=long_generation)
    generation.start()
    time.sleep(3.0)  # well into its decode steps
    status, spoken = post_audio(home, wav_of("turn off the kitchen lights"))
    spoken_done = time.monotonic()
    paraphrase = home.call("POST", "/v1/assist", {"text": "could you dim the kitchen a little"})
    question = home.call("POST", "/v1/assist", {"text": "What is the capital of Italy?"})
    question_done = time.monotonic()
    generation.join(300)

    assert status == 200 and spoken["intent"]["name"] == "HassTurnOff"
    assert paraphrase["intent"]["source"] == "classifier"
    assert question["reply"]["text"] == reference_reply(home, "What is the capital of Italy?")
    assert len(result["generation"]["tokens"]) == 200, "the generation must be a long one"
    assert spoken_done < question_done < result["generation_done"]


def test_the_home_state_survives_a_gateway_restart(tmp_path: Path) -> None:
    settings = gateway_settings(tmp_path, home_file=sample_home_path())
    with RunningGateway(settings) as gw:
        gw.call("POST", "/v1/assist", {"text": "turn on the garage light", "speak": False})
        before = device(gw, "light.garage")
        token = gw.token

    with RunningGateway(settings) as gw:
        gw.token = token  # shown at the first start only
        after = device(gw, "light.garage")

    assert before["on"] is True and after == before
