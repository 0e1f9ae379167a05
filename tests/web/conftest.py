"""The dashboard's end-to-end tests run Debian's Chromium (`make chromium` installs it; never a
browser download) through Playwright, headless, with a fake microphone that plays a command
synthesised here by piper. Screenshots go to tests/web/artifacts/ (git-ignored), printed at
the end of the run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, sync_playwright

from assistant.voice.audio import to_wav
from tests.voice.speech import padded

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
SPOKEN = "turn on the kitchen lights"  # tiny.en transcribes piper's rendering exactly
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",  # grant the microphone without a prompt
    "--use-fake-device-for-media-stream",
]
_shots_taken: list[Path] = []


@pytest.fixture(scope="session")
def fake_microphone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What Chromium's fake microphone plays: the command, 16 kHz 16-bit mono PCM WAV (the
    format Chromium's fake capture reads), with silence around it. The file starts when the
    page opens the microphone, and a busy machine may take a second or more before the page
    records (one such run heard "Front on the kitchen lights"): 2.5 s of silence lead in."""
    path = tmp_path_factory.mktemp("microphone") / "command.wav"
    path.write_bytes(to_wav(padded(SPOKEN, before_s=2.5, after_s=1.5), 16000))
    return path


@pytest.fixture(scope="package")
def browser(fake_microphone: Path) -> Iterator[Browser]:
    """Debian's Chromium, headless, with the fake microphone. Playwright's sync API keeps an event
    loop running on this thread while it is started, so it stops when this package's tests end:
    the asyncio tests after them (tests/wyoming) need the thread's loop free."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make chromium` installs Debian's chromium package")
    # %noloop: play the file once from when the page opens the microphone, then silence.
    microphone = f"--use-file-for-fake-audio-capture={fake_microphone}%noloop"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=[*FLAGS, microphone]
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):  # only this run's screenshots
        old.unlink()
    print(f"\ndashboard screenshots: {ARTIFACTS}")
    _shots_taken.append(ARTIFACTS)
    return ARTIFACTS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _shots_taken:
        terminalreporter.write_line(f"dashboard screenshots: {_shots_taken[0]}")
