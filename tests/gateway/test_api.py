"""The gateway end to end: pairing, devices, generation and embeddings across paired workers
equal to single-device Hugging Face, bad input, concurrency."""

from __future__ import annotations

import functools
import json
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest
import torch

from assistant.launcher import RunningGateway
from edge_worker.models.catalog import LoadedModel, load_model


def raw(
    gw: RunningGateway, method: str, path: str, data: bytes | None, token: str | None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    req = urllib.request.Request(gw.url + path, method=method, data=data)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=600) as resp:
            return resp.status, json.loads(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}"), dict(exc.headers)


@functools.cache
def reference(name: str) -> LoadedModel:
    """The Hugging Face model itself (the gateway keeps only the engine's weights)."""
    return load_model(name)


def reference_tokens(gw: RunningGateway, prompt: str, n: int) -> list[int]:
    tok, model = reference("smollm2-135m").tokenizer, reference("smollm2-135m").model
    assert tok is not None
    text = tok.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=n,
            do_sample=False,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.eos_token_id,
        )
    return out[0, ids.shape[1] :].tolist()


def reference_embeddings(gw: RunningGateway, texts: list[str]) -> torch.Tensor:
    tok, model = reference("minilm").tokenizer, reference("minilm").model
    assert tok is not None
    batch = tok(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    m = batch["attention_mask"].unsqueeze(-1).float()
    return torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1), dim=-1)


def test_paired_workers_are_listed_online(home: RunningGateway) -> None:
    devices = {d["name"]: d for d in home.call("GET", "/v1/devices")}

    assert devices["kitchen-pi"]["online"] and devices["laptop"]["online"]
    assert devices["kitchen-pi"]["paired"] and not devices["kitchen-pi"]["revoked"]


def test_generate_across_two_workers_equals_single_device_generation(home: RunningGateway) -> None:
    prompt = "What should I check before a long drive?"

    answer = home.call("POST", "/v1/generate", {"prompt": prompt, "max_new_tokens": 16})

    assert sorted(answer["plan"]["devices"]) == ["kitchen-pi", "laptop"]
    assert answer["plan"]["strategy"] == "hmp"
    assert answer["tokens"] == reference_tokens(home, prompt, 16)
    assert answer["text"]
    assert answer["timings"]["prefill_ms"] > 0


def test_embeddings_across_workers_equal_single_device(home: RunningGateway) -> None:
    texts = ["turn off the lights", "what is the weather tomorrow in the garden?"]

    answer = home.call("POST", "/v1/embed", {"texts": texts})

    got = torch.tensor(answer["embeddings"])
    assert answer["dimensions"] == 384
    torch.testing.assert_close(got, reference_embeddings(home, texts), atol=1e-4, rtol=0)


def test_plan_and_request_log_describe_the_runs(home: RunningGateway) -> None:
    home.call("POST", "/v1/embed", {"texts": ["hello"]})

    plans = home.call("GET", "/v1/plan")["plans"]
    log = home.call("GET", "/v1/requests?limit=5")

    assert "minilm" in plans
    assert log[0]["kind"] == "embed" and log[0]["status"] == "ok"
    assert "total_ms" in log[0]["timings"]


@pytest.mark.parametrize(
    ("path", "body", "code", "message"),
    [
        ("/v1/generate", b"{not json", 422, "JSON"),
        ("/v1/generate", b'{"prompt": ""}', 422, "at least 1 character"),
        ("/v1/generate", json.dumps({"prompt": "x" * 9000}).encode(), 422, "at most 8000"),
        (
            "/v1/generate",
            b'{"prompt": "hi", "messages": [{"role": "user", "content": "hi"}]}',
            422,
            "exactly one",
        ),
        ("/v1/generate", b'{"prompt": "hi", "max_new_tokens": 500}', 422, "limit 64"),
        ("/v1/generate", b'{"prompt": "hi", "model": "gpt-17"}', 404, "not served"),
        ("/v1/embed", b'{"texts": []}', 422, "at least 1"),
        ("/v1/embed", b'{"texts": ["   "]}', 422, "empty"),
        ("/v1/embed", b'{"texts": ["a"], "extra": 1}', 422, "Extra inputs"),
    ],
)
def test_bad_input_gets_a_4xx_with_a_message(
    home: RunningGateway, path: str, body: bytes, code: int, message: str
) -> None:
    status, payload, _ = raw(home, "POST", path, body, home.token)

    assert status == code
    assert message in json.dumps(payload)


@pytest.mark.parametrize("token", [None, "gh_wrong"])
def test_the_api_needs_a_valid_token(home: RunningGateway, token: str | None) -> None:
    status, payload, headers = raw(home, "GET", "/v1/devices", None, token)

    assert status == 401
    assert "API token" in payload["detail"]
    assert headers.get("www-authenticate") == "Bearer"


def test_health_needs_no_token(home: RunningGateway) -> None:
    status, payload, _ = raw(home, "GET", "/v1/health", None, None)

    assert status == 200 and payload["workers_online"] == 2


def test_fifty_concurrent_requests_are_answered_or_cleanly_refused(home: RunningGateway) -> None:
    texts = [f"request number {i} about the {['hall', 'porch', 'attic'][i % 3]}" for i in range(50)]
    expected = reference_embeddings(home, texts)
    results: list[tuple[int, dict[str, Any], dict[str, str]] | None] = [None] * 50

    def send(i: int) -> None:
        body = json.dumps({"texts": [texts[i]]}).encode()
        results[i] = raw(home, "POST", "/v1/embed", body, home.token)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)

    assert all(r is not None for r in results), "a request got no answer at all"
    answered = refused = 0
    for i, r in enumerate(results):
        assert r is not None
        status, payload, headers = r
        if status == 200:
            answered += 1
            got = torch.tensor(payload["embeddings"][0])
            torch.testing.assert_close(got, expected[i], atol=1e-4, rtol=0)
        else:
            assert status == 503, payload
            assert "retry-after" in {k.lower() for k in headers}
            refused += 1
    assert answered >= 8
    assert answered + refused == 50
