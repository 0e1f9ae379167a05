"""A generation cut off by a lost worker resumes where it stopped (edge_worker/engine/generate.py
`generate(..., prior=, rng=)`, and assistant/cluster/inference.py `chat` across a failover), and
gives exactly the tokens an uninterrupted one gives, greedy or seeded sampling.

The runners are a tiny random-weight Llama on the in-process cluster; `CutOff` wraps one to lose
it at a chosen decode step, as a remote runner does when a worker dies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from torch import Tensor

from assistant.cluster.inference import Answer, chat
from edge_worker.engine.generate import SamplingParams, generate, make_rng
from edge_worker.engine.loader import from_hf
from edge_worker.engine.runtime import InProcessCluster
from edge_worker.errors import CommError
from edge_worker.spec.plan import make_plan
from tests.equivalence.models import tiny_model

NEW_TOKENS = 16
CUT_AT = 5  # the decode step (1-based) that loses the worker: 5 tokens are out by then
PROMPT = [5, 17, 33, 8, 61, 12, 40]
GREEDY = SamplingParams(NEW_TOKENS)
SAMPLED = SamplingParams(NEW_TOKENS, temperature=0.8, top_p=0.9, seed=7)
BOTH = pytest.mark.parametrize("params", [GREEDY, SAMPLED], ids=["greedy", "sampled"])


class CutOff:
    """A runner that records each prefill's length and, if `lose_at` is set, raises CommError
    at that decode step (1-based) instead of answering: a worker lost mid-generation."""

    def __init__(self, inner: InProcessCluster, lose_at: int | None = None) -> None:
        self.inner, self.lose_at = inner, lose_at
        self.prefills: list[int] = []
        self.decodes = 0

    def prefill_last_logits(self, input_ids: Tensor) -> Tensor:
        self.prefills.append(int(input_ids.shape[1]))
        return self.inner.prefill_last_logits(input_ids)

    def decode(self, token_ids: Tensor) -> Tensor:
        self.decodes += 1
        if self.decodes == self.lose_at:
            raise CommError(f"worker lost at decode step {self.decodes}")
        return self.inner.decode(token_ids)


@pytest.fixture(scope="module")
def llama() -> tuple[Any, Any]:
    return from_hf(tiny_model("llama"))


@pytest.fixture
def clusters(llama: tuple[Any, Any]) -> Iterator[list[InProcessCluster]]:
    """Three fresh single-device clusters: a reference, a first attempt and a resumed one."""
    cfg, w = llama
    made = [InProcessCluster(cfg, w, make_plan(cfg, "local", [1.0])) for _ in range(3)]
    yield made
    for c in made:
        c.close()


@BOTH
def test_a_cut_off_generation_resumes_to_the_uninterrupted_tokens(
    clusters: list[InProcessCluster], params: SamplingParams
) -> None:
    whole = generate(clusters[0], PROMPT, params)
    rng = make_rng(params)  # once per request, shared by both attempts
    heard: list[int] = []
    first = CutOff(clusters[1], lose_at=CUT_AT)
    with pytest.raises(CommError):
        generate(first, PROMPT, params, heard.append, rng=rng)
    resumed = CutOff(clusters[2])

    gen = generate(resumed, PROMPT, params, heard.append, prior=tuple(heard), rng=rng)

    assert len(whole.tokens) == NEW_TOKENS and whole.finish_reason == "length"
    assert gen.tokens == whole.tokens and gen.finish_reason == "length"
    assert heard == whole.tokens  # every token heard once, across the two attempts
    assert resumed.prefills == [len(PROMPT) + CUT_AT]
    assert len(gen.decode_ms) == NEW_TOKENS - CUT_AT - 1  # only the resumed run's own steps


def test_a_seeded_sampled_resume_without_the_first_rng_is_refused(
    clusters: list[InProcessCluster],
) -> None:
    with pytest.raises(ValueError, match="rng"):
        generate(clusters[0], PROMPT, SAMPLED, prior=(3, 4))


def test_a_prior_that_already_ended_returns_without_running(
    clusters: list[InProcessCluster],
) -> None:
    runner = CutOff(clusters[0])
    stopped = generate(runner, PROMPT, SamplingParams(8, stop_ids=frozenset({9})), prior=(3, 9))
    full = generate(runner, PROMPT, SamplingParams(2), prior=(3, 4))

    assert (stopped.tokens, stopped.finish_reason) == ([3, 9], "stop")
    assert (full.tokens, full.finish_reason) == ([3, 4], "length")
    assert runner.prefills == []


# chat() across a failover. The gateway's failover tests need real worker processes; this one
# drives chat's work function through a minimal manager whose `run` calls it once per runner,
# moving on to the next after a CommError, as ClusterManager.run does after a re-plan.


class Letters:
    """A tokenizer whose prompt ids are characters mod 96 and whose token t reads as one
    letter: enough for chat's template, its text deltas and its stop strings."""

    eos_token_id = None

    def apply_chat_template(self, messages: list[dict[str, str]], **_: Any) -> str:
        return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": [ord(c) % 96 for c in text]}

    def decode(self, tokens: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(chr(ord("a") + t % 26) for t in tokens)


class FailoverManager:
    """ClusterManager's `served` and `run`, with `run` trying `work` on each runner in turn."""

    def __init__(self, runners: list[Any], max_positions: int) -> None:
        self.runners = runners
        self.model = SimpleNamespace(
            name="tiny", tokenizer=Letters(), cfg=SimpleNamespace(max_positions=max_positions)
        )

    def served(self, model: str) -> Any:
        return self.model

    async def run(self, model: str, work: Any, deadline_s: float) -> tuple[Any, Any, Any]:
        for runner in self.runners:
            try:
                return work(runner), SimpleNamespace(describe=dict), {}
            except CommError:
                continue
        raise AssertionError("every runner was lost")


def ask(runners: list[Any], stop: tuple[str, ...] = ()) -> tuple[Answer, list[str]]:
    said: list[str] = []
    manager: Any = FailoverManager(runners, max_positions=64)  # stands in for ClusterManager
    messages = [{"role": "user", "content": "hi"}]
    answer = asyncio.run(chat(manager, "tiny", messages, SAMPLED, 30, said.append, stop=stop))
    return answer, said


def test_chat_resumes_after_a_failover_and_says_each_piece_once(
    clusters: list[InProcessCluster],
) -> None:
    whole, _ = ask([clusters[0]])
    first, resumed = CutOff(clusters[1], lose_at=CUT_AT), CutOff(clusters[2])

    answer, said = ask([first, resumed])

    assert answer.tokens == whole.tokens and len(answer.tokens) == NEW_TOKENS
    assert answer.text == whole.text and "".join(said) == answer.text
    assert resumed.prefills == [answer.prompt_tokens + CUT_AT]


def test_a_stop_string_after_the_failover_cuts_the_resumed_answer(
    clusters: list[InProcessCluster],
) -> None:
    whole, _ = ask([clusters[0]])
    at = next(
        i for i in range(CUT_AT + 1, NEW_TOKENS - 2) if whole.text.find(whole.text[i : i + 2]) == i
    )
    stop = whole.text[at : at + 2]
    first, resumed = CutOff(clusters[1], lose_at=CUT_AT), CutOff(clusters[2])

    answer, said = ask([first, resumed], stop=(stop,))

    assert answer.finish_reason == "stop"
    assert answer.tokens == whole.tokens[: at + 2]  # all of them, the first attempt's included
    assert answer.text == whole.text[:at] and "".join(said) == answer.text
    assert resumed.prefills == [answer.prompt_tokens + CUT_AT]
