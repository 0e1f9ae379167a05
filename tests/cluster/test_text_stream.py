"""Text deltas from tokens (assistant/cluster/inference.py `_TextStream`), with a tokenizer whose
token i is the character chr(i): what a streaming client receives."""

from __future__ import annotations

from assistant.cluster.inference import _TextStream


class Chars:
    def decode(self, tokens: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(chr(t) for t in tokens)


def feed(stream: _TextStream, text: str) -> bool:
    return any([stream.push(ord(c)) for c in text])


def test_deltas_add_up_to_the_text() -> None:
    said: list[str] = []
    stream = _TextStream(Chars(), said.append)

    feed(stream, "Paris.")

    assert "".join(said) == "Paris." and len(said) == 6


def test_a_stop_string_is_never_sent() -> None:
    said: list[str] = []
    stream = _TextStream(Chars(), said.append, ("\nUser:",))

    stopped = feed(stream, "Hello there.\nUser: more")

    assert stopped and "".join(said) == "Hello there." and stream.stopped_text == "Hello there."
