"""`galaxy bench --voice`: the spoken voice turn measured through the real routes.

A gateway with the sample home and two paired worker processes (loopback, this machine; no
link or CPU emulation: the voice stages run on the gateway, and only the classifier's MiniLM and
the conversation's SmolLM2 use the cluster). Every command of `voice_corpus` is spoken by
piper (the packaged voice) and sent to `POST /v1/assist/audio` as a WAV file:

- intent accuracy, overall and per source (templates, classifier, conversation);
- word error rate of the transcripts against what was said;
- per-stage times (STT, intent, cluster, TTS) and the end-to-end time from the end of the
  audio (the upload is sent) to the reply audio synthesised (the answer arrives with it);
- the time to the first reply audio over `WS /v1/assist/stream` for a few commands (the client
  says `{"type": "end"}` when its audio ends, so no trailing-silence wait is counted);
- device commands idle and during a 200-token generation, interleaved command by command.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from assistant.config import Settings
from assistant.home.loader import sample_home_path
from assistant.launcher import RunningGateway
from assistant.voice.audio import float_to_pcm16, resample, to_wav
from assistant.voice.tts import TextToSpeech
from galaxy_bench.voice_corpus import COMMANDS, QUESTIONS, Case, correct
from galaxy_bench.voice_report import percentiles, report, word_errors

LONG_PROMPT = "Count from 1 to 300, separated by commas."


class Speaker:
    """Piper's packaged voice at its own settings, resampled to 16 kHz with silence around."""

    def __init__(self) -> None:
        self.tts = TextToSpeech()

    def samples(self, text: str) -> np.ndarray:
        pcm = b"".join(s.pcm for s in self.tts.stream(text))
        x = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        pad = np.zeros(4800, dtype=np.float32)  # 0.3 s
        return np.concatenate([pad, resample(x, self.tts.sample_rate), pad])


def _post(gw: RunningGateway, path: str, body: bytes, content_type: str) -> dict[str, Any]:
    req = urllib.request.Request(gw.url + path, data=body, method="POST")
    req.add_header("Content-Type", content_type)
    req.add_header("Authorization", f"Bearer {gw.token}")
    with urllib.request.urlopen(req, timeout=600) as resp:
        answer: dict[str, Any] = json.loads(resp.read())
        return answer


def spoken_turn(gw: RunningGateway, case: Case, audio: np.ndarray) -> dict[str, Any]:
    assert gw.state.home is not None
    wav = to_wav(audio, 16000)
    t0 = time.perf_counter()
    turn = _post(gw, "/v1/assist/audio", wav, "audio/wav")
    end_to_end = (time.perf_counter() - t0) * 1e3
    intent = turn["intent"]
    return {
        "text": case.text,
        "expected": case.intent,
        "transcript": turn["transcript"],
        "intent": intent,
        "source": (intent or {}).get("source"),
        "correct": correct(gw.state.home.home, case, intent),
        "errors": word_errors(case.text, turn["transcript"]),
        "timings": turn["timings"],
        "end_to_end_ms": end_to_end,
    }


def streamed_first_audio(gw: RunningGateway, audio: np.ndarray) -> float:
    """ms from the end of the audio ({"type": "end"}) to the first reply audio frame."""
    from websockets.sync.client import connect

    url = gw.url.replace("http://", "ws://") + f"/v1/assist/stream?token={gw.token}"
    pcm = float_to_pcm16(audio)
    with connect(url, open_timeout=30) as ws:
        ws.recv(30)  # ready
        for i in range(0, len(pcm), 3200):
            ws.send(pcm[i : i + 3200])
        ws.send(json.dumps({"type": "end"}))
        ended = time.perf_counter()
        while True:
            frame = ws.recv(120)
            if isinstance(frame, bytes):
                return (time.perf_counter() - ended) * 1e3


def run_voice(out: Path | None, echo: Callable[[str], None], rounds: int = 2) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="galaxy-voice-bench-"))
    settings = Settings(
        port=0, data_dir=root / "gateway", home_file=sample_home_path(), max_new_tokens=256
    )
    echo("voice bench: gateway with the sample home + 2 workers on loopback")
    speaker = Speaker()
    audio = {case.text: speaker.samples(case.text) for case in (*COMMANDS, *QUESTIONS)}
    with RunningGateway(settings) as gw:
        gw.add_workers(["worker-0", "worker-1"], root / "workers")
        gw.wait_online(["worker-0", "worker-1"])
        _wait_deployed(gw)
        turns = [spoken_turn(gw, case, audio[case.text]) for case in COMMANDS]
        echo(f"  {sum(t['correct'] for t in turns)}/{len(turns)} commands understood")
        questions = [spoken_turn(gw, case, audio[case.text]) for case in QUESTIONS]
        first_audio = [streamed_first_audio(gw, audio[case.text]) for case in COMMANDS[:10]]
        idle, busy = _under_load(gw, audio, rounds)
    result = {
        "setting": "sample home, 2 workers on loopback (no link or CPU emulation), 2 cores",
        "commands": turns,
        "questions": questions,
        "stream_first_audio_ms": percentiles(first_audio),
        "commands_idle_ms": percentiles(idle),
        "commands_during_generation_ms": percentiles(busy),
    }
    if out is not None:
        out.write_text(json.dumps(result, indent=1))
    echo(report(result))
    return result


def _wait_deployed(gw: RunningGateway, timeout: float = 600) -> None:
    models = set(gw.call("GET", "/v1/health")["models"])
    deadline = time.monotonic() + timeout
    while not models <= set(gw.call("GET", "/v1/plan")["plans"]):
        if time.monotonic() > deadline:
            raise TimeoutError("the models were not deployed")
        time.sleep(0.5)


def _keep_generating(gw: RunningGateway, stop: threading.Event) -> None:
    while not stop.is_set():
        gw.call("POST", "/v1/generate", {"prompt": LONG_PROMPT, "max_new_tokens": 200})


def _under_load(
    gw: RunningGateway, audio: dict[str, np.ndarray], rounds: int
) -> tuple[list[float], list[float]]:
    """End-to-end ms of the device commands, idle and while 200-token answers are generated
    one after another, in alternating passes so both see the same machine."""
    commands = [c for c in COMMANDS if c.intent.startswith("HassTurn")]
    idle: list[float] = []
    busy: list[float] = []
    for _ in range(rounds):
        idle += [spoken_turn(gw, c, audio[c.text])["end_to_end_ms"] for c in commands]
        stop = threading.Event()
        generating = threading.Thread(target=_keep_generating, args=(gw, stop))
        generating.start()
        time.sleep(2.0)  # into its decode steps
        busy += [spoken_turn(gw, c, audio[c.text])["end_to_end_ms"] for c in commands]
        stop.set()
        generating.join()
    return idle, busy
