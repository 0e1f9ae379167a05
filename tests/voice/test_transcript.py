"""Which of the beam's other readings come back as alternatives (`close_alternatives`): those
within ALTERNATIVE_MARGIN of the best, one per wording, none with the best's wording, none
that Whisper's rules reject."""

from __future__ import annotations

from dataclasses import replace

from assistant.voice.transcript import (
    ALTERNATIVE_MARGIN,
    LOGPROB_FLOOR,
    Reading,
    close_alternatives,
)

BEST = Reading("Turn on the kitchen lights.", -0.15)


def test_readings_within_the_margin_come_back_best_first() -> None:
    near = Reading("Put on the kitchen lights.", BEST.avg_logprob - ALTERNATIVE_MARGIN / 2)
    nearer = Reading("Turn on the kitchen light.", BEST.avg_logprob - ALTERNATIVE_MARGIN / 4)
    far = Reading("Turn off the kitchen lights.", BEST.avg_logprob - 2 * ALTERNATIVE_MARGIN)

    assert close_alternatives(BEST, [nearer, near, far]) == (nearer, near)


def test_each_wording_comes_back_once_and_never_the_best_s() -> None:
    close = BEST.avg_logprob - 0.01
    others = [
        Reading("Turn on the Kitchen lights.", close),  # the best's words, other case
        Reading("Turn on the kitchen lights", close),  # and without its full stop
        Reading("Put on the kitchen lights.", close),
        Reading("put on the kitchen lights!", close),
    ]

    assert close_alternatives(BEST, others) == (others[2],)


def test_a_reading_whisper_would_reject_is_left_out() -> None:
    said_twice = Reading("Lights on. Lights on.", BEST.avg_logprob - 0.01)
    best = Reading("Lights on.", LOGPROB_FLOOR + 0.05)
    unsure = Reading("Light on.", LOGPROB_FLOOR - 0.05)  # close, but below Whisper's floor

    assert close_alternatives(BEST, [said_twice]) == ()
    assert close_alternatives(best, [unsure]) == ()
    assert close_alternatives(best, [replace(unsure, avg_logprob=best.avg_logprob)]) != ()
