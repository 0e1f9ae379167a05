"""The OpenAI-compatible API through the official `openai` client, against a real gateway with
two real worker processes and the sample home: the answers are the gateway's own (the same as
/v1/generate and /v1/embed), streamed as they are decoded, and every refusal is an OpenAI error
that the client raises as its own exception type."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import openai
import pytest

from assistant.api.errors import openai_error_of
from assistant.cluster.inference import prompt_ids
from assistant.errors import QueueFull
from assistant.home.loader import sample_home_path
from assistant.launcher import RunningGateway
from tests.gateway.conftest import gateway_settings

pytestmark = pytest.mark.slow

PLAIN = "smollm2-135m"
FRUITS = [{"role": "user", "content": "Name five fruits and say one thing about each."}]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    root = tmp_path_factory.mktemp("openai")
    settings = gateway_settings(root, home_file=sample_home_path(), max_new_tokens=256)
    with RunningGateway(settings) as gateway:
        gateway.add_workers(["kitchen-pi", "laptop"], root / "workers")
        gateway.wait_online(["kitchen-pi", "laptop"])
        deadline = time.monotonic() + 300  # both models deployed across the workers
        while set(gateway.call("GET", "/v1/plan")["plans"]) != {"minilm", PLAIN}:
            assert time.monotonic() < deadline, "the models were never deployed"
            time.sleep(0.5)
        yield gateway


@pytest.fixture(scope="module")
def client(gw: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.token, max_retries=0, timeout=300)


def generated(gw: RunningGateway, messages: list[dict[str, str]], n: int) -> dict[str, Any]:
    """What /v1/generate answers, greedily, to the same messages."""
    body = {"messages": messages, "max_new_tokens": n, "temperature": 0}
    return dict(gw.call("POST", "/v1/generate", body))


def raw_post(gw: RunningGateway, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(gw.url + path, data=body, method="POST")
    req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", f"Bearer {gw.token}")
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def newest_request(gw: RunningGateway) -> dict[str, Any]:
    return dict(gw.call("GET", "/v1/requests?limit=1")[0])


# ----- models -----


def test_the_model_list_names_the_served_models_and_galaxy_assist(client: openai.OpenAI) -> None:
    names = {m.id for m in client.models.list()}

    assert names == {PLAIN, "minilm", "galaxy-assist"}


def test_an_unknown_model_is_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("gpt-4o")

    assert caught.value.code == "model_not_found"


# ----- chat -----


def test_a_greedy_chat_completion_equals_generate(
    gw: RunningGateway, client: openai.OpenAI
) -> None:
    reference = generated(gw, FRUITS, 40)

    out = client.chat.completions.create(model=PLAIN, messages=FRUITS, max_tokens=40, temperature=0)

    assert out.choices[0].message.content == reference["text"]
    assert out.choices[0].finish_reason == reference["finish_reason"]


def test_usage_counts_the_prompt_and_the_answer(gw: RunningGateway, client: openai.OpenAI) -> None:
    reference = generated(gw, FRUITS, 24)
    prompt = prompt_ids(gw.state.manager.served(PLAIN), FRUITS)

    out = client.chat.completions.create(model=PLAIN, messages=FRUITS, max_tokens=24)

    assert out.usage is not None
    assert out.usage.prompt_tokens == len(prompt)
    assert out.usage.completion_tokens == len(reference["tokens"])
    assert out.usage.total_tokens == len(prompt) + len(reference["tokens"])


def test_max_completion_tokens_cuts_the_answer_with_finish_reason_length(
    client: openai.OpenAI,
) -> None:
    out = client.chat.completions.create(model=PLAIN, messages=FRUITS, max_completion_tokens=5)

    assert out.choices[0].finish_reason == "length"
    assert out.usage is not None and out.usage.completion_tokens == 5


def test_the_same_seed_samples_the_same_answer(client: openai.OpenAI) -> None:
    def sample() -> str | None:
        out = client.chat.completions.create(
            model=PLAIN,
            messages=FRUITS,
            max_tokens=16,
            temperature=1.2,
            top_p=0.95,
            seed=1234,
        )
        return out.choices[0].message.content

    assert sample() == sample()


def test_a_stop_string_ends_the_answer_before_it(gw: RunningGateway, client: openai.OpenAI) -> None:
    text = generated(gw, FRUITS, 40)["text"]
    stop = text.split()[6]  # a word well inside the greedy answer

    out = client.chat.completions.create(
        model=PLAIN, messages=FRUITS, max_tokens=40, stop=[stop, "never said"]
    )

    assert out.choices[0].message.content == text[: text.index(stop)]
    assert out.choices[0].finish_reason == "stop"


def test_a_stream_sends_the_greedy_text_in_chunks_while_it_is_decoded(
    gw: RunningGateway, client: openai.OpenAI
) -> None:
    reference = generated(gw, FRUITS, 40)
    stream = client.chat.completions.create(
        model=PLAIN,
        messages=FRUITS,
        max_tokens=40,
        stream=True,
        stream_options={"include_usage": True},
    )

    chunks, in_flight_at_first_text = [], None
    for chunk in stream:
        chunks.append(chunk)
        if in_flight_at_first_text is None and chunk.choices and chunk.choices[0].delta.content:
            in_flight_at_first_text = gw.state.manager._waiting  # the generation still runs?

    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert "".join(pieces) == reference["text"]
    assert sum(1 for p in pieces if p) >= 5
    assert in_flight_at_first_text == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == reference[
        "finish_reason"
    ]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len(reference["tokens"])


def test_a_stream_with_a_stop_string_never_sends_it(
    gw: RunningGateway, client: openai.OpenAI
) -> None:
    text = generated(gw, FRUITS, 40)["text"]
    stop = " ".join(text.split()[6:8])  # two words: the first is held back until the second

    stream = client.chat.completions.create(
        model=PLAIN, messages=FRUITS, max_tokens=40, stop=stop, stream=True
    )

    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert "".join(pieces) == text[: text.index(stop)]


def test_text_that_only_began_a_stop_string_is_sent_after_all(
    gw: RunningGateway, client: openai.OpenAI
) -> None:
    reference = generated(gw, FRUITS, 40)
    word = reference["text"].split()[6]
    near_miss = f"{word} zebra quagga"  # starts like the answer, never appears in it

    stream = client.chat.completions.create(
        model=PLAIN, messages=FRUITS, max_tokens=40, stop=near_miss, stream=True
    )

    chunks = [c for c in stream if c.choices]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == reference["text"]
    assert chunks[-1].choices[0].finish_reason == reference["finish_reason"]


def test_a_client_that_leaves_mid_stream_frees_the_cluster(
    gw: RunningGateway, client: openai.OpenAI
) -> None:
    count = [{"role": "user", "content": "Count from 1 to 300, separated by commas."}]
    stream = client.chat.completions.create(
        model=PLAIN, messages=count, max_tokens=256, stream=True
    )
    said = 0
    for chunk in stream:  # two pieces of text: the generation is under way
        said += bool(chunk.choices and chunk.choices[0].delta.content)
        if said == 2:
            break

    stream.close()  # the connection goes; the gateway hears it
    deadline = time.monotonic() + 60
    while (entry := newest_request(gw))["status"] != "cancelled":
        assert time.monotonic() < deadline, f"the generation was not cancelled: {entry}"
        time.sleep(0.2)
    after = client.chat.completions.create(model=PLAIN, messages=FRUITS, max_tokens=3)

    decoded = [s for s in entry["timings"]["trace"] if s["op"] == "decode"]
    assert entry["kind"] == "openai" and entry["model"] == PLAIN
    assert len(decoded) < 200  # stopped early, not at the 256-token limit
    assert after.choices[0].finish_reason == "length"
    assert gw.state.manager._waiting == 0


def test_chat_completions_are_in_the_request_log(client: openai.OpenAI, gw: RunningGateway) -> None:
    client.chat.completions.create(model=PLAIN, messages=FRUITS, max_tokens=2)

    entry = newest_request(gw)

    assert (entry["kind"], entry["model"], entry["status"]) == ("openai", PLAIN, "ok")
    assert entry["timings"]["completion_tokens"] == 2


# ----- galaxy-assist -----


def test_galaxy_assist_turns_on_the_kitchen_lights(
    gw: RunningGateway, client: openai.OpenAI
) -> None:
    gw.call("POST", "/v1/home/devices/light.kitchen_ceiling", {"on": False})
    history = [
        {"role": "system", "content": "You are a voice assistant for Home Assistant."},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "Hello! How can I help?"},
    ]

    out = client.chat.completions.create(
        model="galaxy-assist",
        messages=[*history, {"role": "user", "content": "turn on the kitchen lights"}],
    )

    home = {d["id"]: d["state"] for d in gw.call("GET", "/v1/home")["devices"]}
    assert home["light.kitchen_ceiling"]["on"] is True
    assert out.choices[0].message.content
    changes = gw.call("GET", "/v1/home/changes")
    rid = out.id.removeprefix("chatcmpl-")
    assert any(c.get("request_id") == rid for c in changes)


def test_galaxy_assist_streams_a_conversational_reply(client: openai.OpenAI) -> None:
    question = [{"role": "user", "content": "What is a good name for a cat?"}]
    whole = client.chat.completions.create(model="galaxy-assist", messages=question)

    stream = client.chat.completions.create(model="galaxy-assist", messages=question, stream=True)

    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert whole.choices[0].message.content
    assert "".join(pieces).rstrip() == whole.choices[0].message.content
    assert sum(1 for p in pieces if p) >= 3


# ----- embeddings -----


@pytest.mark.parametrize("fields", [{}, {"encoding_format": "float"}], ids=["base64", "float"])
def test_embeddings_equal_embed(
    gw: RunningGateway, client: openai.OpenAI, fields: dict[str, Any]
) -> None:
    texts = ["turn off the porch light", "what is the weather like"]
    reference = np.array(gw.call("POST", "/v1/embed", {"texts": texts})["embeddings"])

    # Without encoding_format the client asks for base64 and decodes it itself.
    out = client.embeddings.create(model="minilm", input=texts, **fields)

    vectors = np.array([d.embedding for d in out.data])
    np.testing.assert_allclose(vectors, reference, rtol=1e-5, atol=1e-6)
    assert [d.index for d in out.data] == [0, 1]
    assert out.usage.prompt_tokens > 0


def test_base64_embeddings_are_little_endian_float32(gw: RunningGateway) -> None:
    body = json.dumps({"model": "minilm", "input": "hello", "encoding_format": "base64"})

    status, out = raw_post(gw, "/v1/embeddings", body.encode())

    assert status == 200
    vector = np.frombuffer(base64.b64decode(out["data"][0]["embedding"]), dtype="<f4")
    assert vector.shape == (384,) and abs(float(np.linalg.norm(vector)) - 1.0) < 1e-4


# ----- refusals, in OpenAI's format -----


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tools": [{"type": "function", "function": {"name": "lights"}}]}, "tools"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"response_format": {"type": "json_object"}}, "response_format.type"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"temperature": 3}, "temperature"),
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
    ],
)
def test_an_unsupported_field_is_a_bad_request_naming_it(
    client: openai.OpenAI, fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=PLAIN, messages=FRUITS, **fields)

    assert caught.value.param == param
    assert caught.value.body["type"] == "invalid_request_error"


def test_harmless_fields_of_openai_clients_are_accepted(client: openai.OpenAI) -> None:
    out = client.chat.completions.create(
        model=PLAIN,
        messages=FRUITS,
        max_tokens=2,
        user="kitchen-tablet",
        presence_penalty=0,
        frequency_penalty=0,
        tools=[],
        response_format={"type": "text"},
        n=1,
    )

    assert out.choices[0].finish_reason == "length"


def test_an_unknown_chat_model_is_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=FRUITS)


def test_an_embedding_model_cannot_chat(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="embedding model"):
        client.chat.completions.create(model="minilm", messages=FRUITS)


def test_max_tokens_past_the_gateway_limit_is_a_bad_request(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="GALAXY_MAX_NEW_TOKENS"):
        client.chat.completions.create(model=PLAIN, messages=FRUITS, max_tokens=5000)


def test_a_wrong_token_is_an_authentication_error(gw: RunningGateway) -> None:
    stranger = openai.OpenAI(base_url=gw.url + "/v1", api_key="gh_wrong", max_retries=0)

    with pytest.raises(openai.AuthenticationError) as caught:
        stranger.chat.completions.create(model=PLAIN, messages=FRUITS)

    assert caught.value.code == "invalid_api_key"


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "smollm2-135m", "messages": [{"role": "user", "content": "hi"}], '
        b'"temperature": NaN}',
        b'{"model": "smollm2-135m", "messages": [{"role": "user", "content": "hi"}], '
        b'"top_p": Infinity}',
        b'{"model": "smollm2-135m", "messages": [{"role": "user", "content": "hi \\ud800"}]}',
        b'{"model": "smollm2-135m", "messages": [{"role": "user", "content": "hi \xed\xa0\x80"}]}',
        b'{"model": "smollm2-135m", "messages": [{"role": "user", "content": "hi \xff"}]}',
        b'{"model": "smollm2-135m", "messages": [{"role": "user"',
        b"",
    ],
    ids=["nan", "infinity", "escaped-surrogate", "raw-surrogate", "not-utf8", "cut-off", "empty"],
)
def test_a_malformed_body_is_an_openai_bad_request(gw: RunningGateway, body: bytes) -> None:
    status, out = raw_post(gw, "/v1/chat/completions", body)

    assert status == 400
    assert out["error"]["type"] == "invalid_request_error" and out["error"]["message"]


def test_token_ids_as_embedding_input_are_a_bad_request(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="token ids"):
        client.embeddings.create(model="minilm", input=[[101, 2023]])


def test_a_full_queue_is_a_503_with_retry_after_in_openai_format() -> None:
    answer = openai_error_of(QueueFull("8 requests are already in flight"))

    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "2"
    assert json.loads(bytes(answer.body))["error"]["type"] == "server_error"
