"""The model catalogue: packaged aliases, -shape aliases, local paths and offline failures."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from edge_worker.errors import ModelNotAvailable
from edge_worker.models import ALIASES, LoadedModel, load_model, shape_config
from edge_worker.models.packaged import cache_folder, load_gguf, minilm_folder, smollm2_gguf


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def smollm2() -> Iterator[LoadedModel]:
    # Uses the user's conversion cache: about 15 s the first time, under 1 s afterwards.
    yield load_model("smollm2-135m")


@pytest.fixture(scope="module")
def minilm() -> LoadedModel:
    return load_model("minilm")


def _embed(loaded: LoadedModel, sentences: list[str]) -> torch.Tensor:
    assert loaded.tokenizer is not None
    batch = loaded.tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = loaded.model(**batch).last_hidden_state  # (B, T, 384)
    mask = batch["attention_mask"].unsqueeze(-1).float()  # (B, T, 1)
    pooled = (hidden * mask).sum(1) / mask.sum(1)  # (B, 384): sentence-transformers' mean pooling
    return torch.nn.functional.normalize(pooled, dim=-1)


# --- minilm -----------------------------------------------------------------------------------


def test_minilm_is_a_packaged_bert_encoder(minilm: LoadedModel) -> None:
    assert minilm.packaged and not minilm.is_decoder
    assert type(minilm.model).__name__ == "BertModel"
    assert minilm.model.dtype == torch.float32 and not minilm.model.training
    assert minilm.model.config._attn_implementation == "eager"


def test_minilm_embeds_a_sentence_to_384_values(minilm: LoadedModel) -> None:
    embeddings = _embed(minilm, ["Turn on the kitchen light."])

    assert embeddings.shape == (1, 384)


def test_minilm_embeddings_place_paraphrases_closer(minilm: LoadedModel) -> None:
    a, b, c = _embed(
        minilm,
        ["Turn on the kitchen light.", "Switch the kitchen lamp on.", "What is the weather?"],
    )

    assert a @ b > a @ c + 0.2


def test_a_local_folder_loads_like_its_alias(minilm: LoadedModel) -> None:
    loaded = load_model(str(minilm_folder()))

    assert loaded.packaged and loaded.tokenizer is not None
    torch.testing.assert_close(_embed(loaded, ["hello"]), _embed(minilm, ["hello"]))


def test_a_hub_id_in_the_offline_cache_loads(tmp_path: Path) -> None:
    # A Hugging Face cache laid out as huggingface_hub writes it, holding MiniLM as "acme/mini".
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--acme--mini"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for source in minilm_folder().iterdir():
        (snapshot / source.name).symlink_to(source)
    code = (
        "from edge_worker.models import load_model; m = load_model('acme/mini');"
        "print(type(m.model).__name__, m.packaged, m.tokenizer is not None)"
    )

    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "HF_HUB_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1"},
    )

    assert result.stdout.split() == ["BertModel", "True", "True"]


def test_num_layers_keeps_the_first_layers_of_a_real_model(minilm: LoadedModel) -> None:
    short: Any = load_model("minilm", num_layers=2).model
    full: Any = minilm.model

    assert short.config.num_hidden_layers == 2
    assert len(short.encoder.layer) == 2
    torch.testing.assert_close(
        short.encoder.layer[1].output.dense.weight, full.encoder.layer[1].output.dense.weight
    )


def test_num_layers_beyond_the_model_is_refused() -> None:
    with pytest.raises(ValueError, match="has 6 layers"):
        load_model("minilm", num_layers=7)


# --- smollm2-135m -----------------------------------------------------------------------------


def test_smollm2_is_a_packaged_llama_decoder(smollm2: LoadedModel) -> None:
    assert smollm2.packaged and smollm2.is_decoder
    assert type(smollm2.model).__name__ == "LlamaForCausalLM"
    assert smollm2.model.dtype == torch.float32 and not smollm2.model.training
    assert smollm2.model.config._attn_implementation == "eager"
    assert smollm2.model.config.num_hidden_layers == 30


def test_smollm2_tokenizer_has_chatml_template_and_eos(smollm2: LoadedModel) -> None:
    tokenizer = smollm2.tokenizer
    assert tokenizer is not None

    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.eos_token_id == smollm2.model.generation_config.eos_token_id == 2
    assert tokenizer.chat_template is not None and "<|im_start|>" in tokenizer.chat_template


def test_smollm2_greedy_answers_in_english(smollm2: LoadedModel) -> None:
    tokenizer: Any = smollm2.tokenizer
    model: Any = smollm2.model
    assert tokenizer is not None
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )

    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=8, do_sample=False)
    answer = tokenizer.decode(out[0, prompt["input_ids"].shape[1] :], skip_special_tokens=True)

    assert "Paris" in answer


def test_smollm2_num_layers_runs_a_shorter_decoder() -> None:
    short: Any = load_model("smollm2-135m", num_layers=2).model

    with torch.no_grad():
        logits = short(torch.tensor([[1, 2, 3]])).logits

    assert len(short.model.layers) == 2
    assert logits.shape == (1, 3, 49152)


@pytest.mark.slow
@pytest.mark.long  # 80 s: with the long suites, so make test stays under 25 minutes
def test_smollm2_conversion_cache_gives_identical_logits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GALAXY_CACHE_DIR", str(tmp_path))
    fresh, _ = load_gguf(smollm2_gguf())

    cached = load_model("smollm2-135m")  # converts into tmp_path, then loads the saved folder

    folder = cache_folder(smollm2_gguf(), "smollm2-135m")
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temp leftovers
    tokens = torch.tensor([[1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173]])
    with torch.no_grad():
        torch.testing.assert_close(
            cached.model(tokens).logits, fresh(tokens).logits, rtol=0.0, atol=0.0
        )


# --- -shape aliases ---------------------------------------------------------------------------

SHAPES: dict[str, tuple[str, int, dict[str, Any]]] = {
    # alias: (model class, real layer count, config values)
    "bert-large-shape": (
        "BertModel",
        24,
        {"hidden_size": 1024, "num_attention_heads": 16, "intermediate_size": 4096,
         "vocab_size": 30522, "max_position_embeddings": 512},
    ),
    "distilbert-shape": (
        "DistilBertModel",
        6,
        {"dim": 768, "n_heads": 12, "hidden_dim": 3072, "vocab_size": 30522},
    ),
    "gpt2-large-shape": (
        "GPT2LMHeadModel",
        36,
        {"n_embd": 1280, "n_head": 20, "n_positions": 1024, "vocab_size": 50257},
    ),
    "opt-1.3b-shape": (
        "OPTForCausalLM",
        24,
        {"hidden_size": 2048, "num_attention_heads": 32, "ffn_dim": 8192,
         "max_position_embeddings": 2048, "do_layer_norm_before": True,
         "word_embed_proj_dim": 2048, "vocab_size": 50272},
    ),
    "qwen2.5-0.5b-shape": (
        "Qwen2ForCausalLM",
        24,
        {"hidden_size": 896, "num_attention_heads": 14, "num_key_value_heads": 2,
         "intermediate_size": 4864, "vocab_size": 151936, "tie_word_embeddings": True,
         "max_position_embeddings": 32768, "rms_norm_eps": 1e-6},
    ),
    "smollm2-135m-shape": (
        "LlamaForCausalLM",
        30,
        {"hidden_size": 576, "num_attention_heads": 9, "num_key_value_heads": 3,
         "intermediate_size": 1536, "vocab_size": 49152, "tie_word_embeddings": True,
         "rms_norm_eps": 1e-5},
    ),
}  # fmt: skip
ROPE_THETA = {"qwen2.5-0.5b-shape": 1_000_000.0, "smollm2-135m-shape": 100_000.0}


def test_every_shape_alias_is_listed_and_says_random_weights() -> None:
    shape_aliases = {a for a in ALIASES if a.endswith("-shape")}

    assert shape_aliases == set(SHAPES)
    assert all("random weights" in ALIASES[a] for a in shape_aliases)


@pytest.mark.parametrize("alias", list(SHAPES))
def test_shape_config_has_the_real_dimensions(alias: str) -> None:
    _, layers, expected = SHAPES[alias]

    config = shape_config(alias)

    assert config.num_hidden_layers == layers
    assert {key: getattr(config, key) for key in expected} == expected
    if alias in ROPE_THETA:
        assert config.rope_parameters["rope_theta"] == ROPE_THETA[alias]


@pytest.mark.parametrize("alias", list(SHAPES))
def test_shape_alias_builds_two_random_layers(alias: str) -> None:
    model_class, _, expected = SHAPES[alias]

    loaded = load_model(alias, num_layers=2)

    model: Any = loaded.model
    assert type(model).__name__ == model_class
    assert not loaded.packaged and loaded.tokenizer is None
    assert loaded.is_decoder == model_class.endswith(("ForCausalLM", "LMHeadModel"))
    assert model.config.num_hidden_layers == 2
    assert model.dtype == torch.float32 and not model.training
    assert model.config._attn_implementation == "eager"
    hidden = expected.get("hidden_size", expected.get("dim", expected.get("n_embd")))
    assert model.get_input_embeddings().weight.shape == (expected["vocab_size"], hidden)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    with torch.no_grad():
        out = model(torch.tensor([[5, 6, 7, 8]]))
    last = out.logits if loaded.is_decoder else out.last_hidden_state
    assert torch.isfinite(last).all()


def test_shape_weights_are_initialised_by_transformers_in_a_fresh_process() -> None:
    # Guards the fast construction path when it is the process's first use of transformers:
    # Linear weights must be N(0, 0.02) (PyTorch's own kaiming init would give 1/sqrt(3 * 1536)
    # = 0.0147 for down_proj), RMSNorm weights ones, and nothing left as NaN.
    code = (
        "import torch; from edge_worker.models import load_model;"
        "m = load_model('smollm2-135m-shape', num_layers=1).model;"
        "assert all(torch.isfinite(p).all() for p in m.parameters());"
        "print(round(m.model.layers[0].mlp.down_proj.weight.std().item(), 4),"
        " m.model.layers[0].input_layernorm.weight.mean().item())"
    )

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert result.stdout.split() == ["0.02", "1.0"]


def test_shape_weights_follow_the_seed() -> None:
    def first_weight(seed: int) -> torch.Tensor:
        model: Any = load_model("smollm2-135m-shape", num_layers=1, seed=seed).model
        return model.lm_head.weight

    torch.manual_seed(123)
    same_a, same_b, other = first_weight(0), first_weight(0), first_weight(1)
    after = torch.rand(1)
    torch.manual_seed(123)

    assert torch.equal(same_a, same_b) and not torch.equal(same_a, other)
    assert torch.equal(after, torch.rand(1))  # building did not draw from the caller's RNG


# --- failures ---------------------------------------------------------------------------------


def test_unknown_hub_id_fails_fast_with_advice() -> None:
    started = time.perf_counter()
    with pytest.raises(ModelNotAvailable) as info:
        load_model("foo/bar")

    assert time.perf_counter() - started < 5.0
    message = str(info.value)
    assert "not an alias" in message and "minilm" in message and "bert-large-shape" in message
    assert "no internet access" in message and "local path" in message


def test_misspelt_alias_suggests_the_alias() -> None:
    with pytest.raises(ModelNotAvailable, match="did you mean 'minilm'"):
        load_model("minilmm")


def test_missing_local_path_is_reported_as_a_path(tmp_path: Path) -> None:
    with pytest.raises(ModelNotAvailable, match="no such model folder"):
        load_model(str(tmp_path / "no" / "such" / "model"))


def test_shape_config_refuses_a_non_shape_alias() -> None:
    with pytest.raises(ModelNotAvailable, match="not a shape alias"):
        shape_config("minilm")


def test_num_layers_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        load_model("distilbert-shape", num_layers=0)


def test_importing_the_catalogue_does_not_import_torch() -> None:
    code = "import sys, edge_worker.models; print('torch' in sys.modules)"

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("alias", sorted(SHAPES))
def test_light_shape_config_maps_like_the_transformers_config(alias: str) -> None:
    from edge_worker.models.catalog import load_config
    from edge_worker.spec.hf_config import config_from_hf

    assert config_from_hf(load_config(alias)) == config_from_hf(shape_config(alias))
