"""`galaxy verify` as a user runs it: real packaged models, JSON out, exit status."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

KEYS = {
    "model",
    "strategy",
    "transport",
    "devices",
    "split",
    "max_abs_err",
    "ref_scale",
    "tokens_match",
}


def galaxy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "assistant.cli", *args], capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize("strategy", ["hmp", "tp", "sp", "pp", "local"])
def test_verify_minilm_uneven_passes_for_every_strategy(strategy: str) -> None:
    out = galaxy(
        "verify",
        "--model",
        "minilm",
        "--devices",
        "3",
        "--split",
        "uneven",
        "--strategy",
        strategy,
        "--json",
    )

    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result.keys() >= KEYS
    assert result["tokens_match"] is None
    assert result["max_abs_err"] <= 1e-4 * max(1.0, result["ref_scale"])


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["hmp", "tp", "sp", "pp", "local"])
def test_verify_smollm2_uneven_matches_tokens_for_every_strategy(strategy: str) -> None:
    out = galaxy(
        "verify",
        "--model",
        "smollm2-135m",
        "--devices",
        "3",
        "--split",
        "uneven",
        "--strategy",
        strategy,
        "--json",
    )

    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["tokens_match"] is True
    assert result["max_abs_err"] <= 1e-4 * max(1.0, result["ref_scale"])


def test_verify_smollm2_hybrid_decoding_alone_matches_tokens() -> None:
    out = galaxy(
        "verify",
        "--model",
        "smollm2-135m",
        "--devices",
        "2",
        "--split",
        "3,1",
        "--decode",
        "local",
        "--json",
    )

    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["tokens_match"] is True


def test_more_devices_than_attention_heads_fails_before_compute() -> None:
    """More devices than KV groups split query heads (K/V replicated); more than heads cannot."""
    out = galaxy("verify", "--model", "smollm2-135m", "--devices", "10", "--json")

    assert out.returncode == 2
    assert "only 9 attention heads" in out.stderr
    assert out.stdout == ""


def test_a_split_naming_the_wrong_number_of_devices_is_refused() -> None:
    out = galaxy("verify", "--model", "minilm", "--devices", "3", "--split", "1,2")

    assert out.returncode == 2
    assert "gives 2 weights for 3 devices" in out.stderr


def test_an_unknown_model_fails_fast_with_advice() -> None:
    out = galaxy("verify", "--model", "no-such/model", "--json")

    assert out.returncode == 2
    assert "not an alias" in out.stderr or "offline" in out.stderr


def test_verify_minilm_with_an_int8_wire_reports_its_error() -> None:
    out = galaxy(
        "verify", "--model", "minilm", "--devices", "3", "--split", "uneven", "--wire", "int8",
        "--json",
    )  # fmt: skip

    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["wire"] == "int8"
    scale = max(1.0, result["ref_scale"])
    # Really lossy (far above the fp32 wire's tolerance), but within the int8 wire's bound.
    assert 1e-3 * scale < result["max_abs_err"] <= result["tolerance"] == pytest.approx(0.1 * scale)


@pytest.mark.slow
@pytest.mark.long
def test_verify_smollm2_with_an_int8_wire_over_tcp_still_matches_20_greedy_tokens() -> None:
    out = galaxy(
        "verify", "--model", "smollm2-135m", "--devices", "3", "--split", "uneven",
        "--wire", "int8", "--transport", "tcp", "--json",
    )  # fmt: skip

    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["wire"] == "int8" and result["transport"] == "tcp"
    assert result["tokens_match"] is True and len(result["tokens"]) == 20
    assert result["max_abs_err"] > 1e-4 * max(1.0, result["ref_scale"])


def test_bench_refuses_an_unknown_variant_before_starting_anything() -> None:
    done = galaxy("bench", "--setting", "reference", "--variant", "hmp+overlap", "--variant", "x")

    assert done.returncode == 2
    assert "unknown variant ['x']" in done.stderr and "hmp+overlap" in done.stderr
