"""The API's numbers and strings (cases 33-48; conftest.py says how every case ends).

Numbers and strings (each was checked; the 500s are fixed)
 33. temperature NaN (was 500)  34. top_p Infinity (was 500)  35. 1e999 (was 500)
 36-38. a lone surrogate in a prompt, an embedding text (was 500), an assist text (was 500)
 39. a lone surrogate in an OpenAI message     400 in OpenAI's shape
 40. bytes that are not UTF-8                  422
 41-42. a negative and a huge `limit`          422
 43-44. a negative and a huge `max_new_tokens`   422
 45. a huge `top_k`  46. an absurd `seed`      422
 47. a timer of NaN seconds (was 500)          422
 48. a lone surrogate in a Wyoming event       an error event, the connection goes on
"""

from __future__ import annotations

import json

import pytest

from tests.security.conftest import Home
from tests.security.hostile import (
    WyomingLine,
    request,
)

pytestmark = [pytest.mark.slow, pytest.mark.long]

# ----- numbers and strings -------------------------------------------------------------------

NESTED = b'{"texts": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        pytest.param("/v1/embed", NESTED, 422, "nests deeper", id="nested-100000"),
        pytest.param(
            "/v1/generate",
            b'{"prompt": "hi", "seed": 1' + b"0" * 100_000 + b"}",
            422,
            "digits",
            id="huge-integer",
        ),
        pytest.param(
            "/v1/generate",
            b'{"prompt": "hi", "temperature": NaN}',
            422,
            "NaN",
            id="temperature-nan",
        ),
        pytest.param(
            "/v1/generate",
            b'{"prompt": "hi", "top_p": Infinity}',
            422,
            "Infinity",
            id="top-p-infinity",
        ),
        pytest.param(
            "/v1/generate",
            b'{"prompt": "hi", "temperature": 1e999}',
            422,
            "out of range",
            id="1e999",
        ),
        pytest.param(
            "/v1/generate",
            b'{"prompt": "\\ud800 hi"}',
            422,
            "lone surrogate",
            id="surrogate-prompt",
        ),
        pytest.param(
            "/v1/embed", b'{"texts": ["a\\udfff"]}', 422, "texts[0]", id="surrogate-embed"
        ),
        pytest.param(
            "/v1/assist", b'{"text": "\\udc00"}', 422, "lone surrogate", id="surrogate-assist"
        ),
        pytest.param(
            "/v1/chat/completions",
            b'{"model": "smollm2-135m", "messages": [{"role": "user", "content": "\\ud83d"}]}',
            400,
            "lone surrogate",
            id="surrogate-openai",
        ),
        pytest.param("/v1/embed", b'{"texts": ["\xff\xfe"]}', 422, "not UTF-8", id="not-utf-8"),
        pytest.param(
            "/v1/generate",
            b'{"prompt": "hi", "max_new_tokens": -5}',
            422,
            "greater than",
            id="negative-max-new-tokens",
        ),
        pytest.param(
            "/v1/generate",
            b'{"prompt": "hi", "max_new_tokens": 1000000000}',
            422,
            "less than",
            id="huge-max-new-tokens",
        ),
        pytest.param(
            "/v1/generate",
            b'{"prompt": "hi", "top_k": 1000000000000}',
            422,
            "less than",
            id="huge-top-k",
        ),
        pytest.param(
            "/v1/generate", b'{"prompt": "hi", "seed": 1e300}', 422, "seed", id="absurd-seed"
        ),
        pytest.param(
            "/v1/home/timers", b'{"name": "tea", "seconds": NaN}', 422, "NaN", id="timer-nan"
        ),
    ],
)
def test_a_body_the_api_cannot_use_is_refused_with_why(
    home: Home, path: str, body: bytes, status: int, message: str
) -> None:
    got, answer, _ = request(home.gw, "POST", path, body)

    assert got == status, answer
    assert message in json.dumps(answer)
    home.assert_still_serving()


@pytest.mark.parametrize("query", ["limit=-1", "limit=99999999999999999999999"])
def test_a_limit_out_of_range_is_refused(home: Home, query: str) -> None:
    status, answer, _ = request(home.gw, "GET", f"/v1/requests?{query}")

    assert status == 422 and answer["detail"][0]["loc"] == ["query", "limit"]
    home.assert_still_serving()


def test_a_lone_surrogate_over_wyoming_gets_an_error_and_the_connection_goes_on(
    home: Home,
) -> None:
    server = home.gw.state.extras["wyoming"]
    client = WyomingLine(server.host, server.port)
    try:
        client.sock.sendall(b'{"type": "synthesize", "data": {"text": "\\ud800"}}\n')
        error = client.read()
        client.send({"type": "describe"})
        info = client.read()
    finally:
        client.close()

    assert (
        error is not None and error["type"] == "error" and "lone surrogate" in error["data"]["text"]
    )
    assert info is not None and info["type"] == "info"
    home.assert_still_serving()
