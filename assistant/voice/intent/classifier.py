"""The intent classifier for sentences the templates miss: sentence embeddings (all-MiniLM-L6-v2,
computed on the cluster by the injected `embed`) and a logistic regression trained at start-up.

Training data (sampling.py): sentences drawn at random from the same HA templates the template
recogniser uses, filled with this home's names, plus our own sentences (sentences/en.yaml:
relative requests, everyday wordings, and the `Conversation` class of questions and chat that
are not commands). Names are delexicalised first (slots.py: "the desk lamp" -> "the light",
"the study" -> "the room"), for training and prediction alike, so the model learns how a request
is worded rather than this home's names, and the slot filler reads the names afterwards.

Model: multinomial logistic regression on the L2-normalised 384-d embeddings (torch, L-BFGS,
class-balanced, L2 penalty); under a second to train on a CPU. On our held-out paraphrases it
beat nearest-centroid and k-nearest-neighbours (see the tests and the report). The `Conversation`
class is what sends open questions below the threshold: without it, softmax confidence over the
commands alone let some questions through.

Cache: the trained weights are stored in `cache_dir` under a key of everything training reads:
the home file's hash (`Home.digest`; for a home built in code, a hash of its names, aliases,
areas and classes), the embedding model's name, our sentences file, the hassil and
home-assistant-intents versions and the training settings. A second start with the same key
loads the weights and calls `embed` for nothing but predictions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
import yaml
from hassil import Intents

from assistant.home.model import Home, Intent
from assistant.voice.intent.sampling import sample_sentences
from assistant.voice.intent.slots import SlotFiller
from assistant.voice.intent.templates import (
    RENAMED_INTENTS,
    SUPPORTED_INTENTS,
    device_class,
    home_intents,
    home_slot_lists,
    supported_templates_dict,
)

log = logging.getLogger(__name__)

# texts -> (n, d) embeddings (torch.Tensor or numpy array); normalised here if it does not.
EmbedFn = Callable[[list[str]], Any]
CONVERSATION = "Conversation"  # our negative class: never an intent
SENTENCES_FILE = Path(__file__).with_name("sentences") / "en.yaml"
_CACHE_FORMAT = 1


@dataclass(frozen=True)
class ClassifierConfig:
    """Training settings (part of the cache key)."""

    ha_per_intent: int = 40  # sentences sampled from HA's templates per intent
    ours_per_intent: int = 40  # ... and from sentences/en.yaml per intent (and Conversation)
    weight_decay: float = 1e-5  # L2 penalty on the weights
    max_iter: int = 300  # L-BFGS iterations
    batch_size: int = 64  # sentences per embed call
    seed: int = 0


@dataclass(frozen=True)
class LinearModel:
    """Softmax(x @ weight + bias) over `labels`; x: (n, d) L2-normalised embeddings."""

    labels: tuple[str, ...]
    weight: torch.Tensor  # (d, n_labels)
    bias: torch.Tensor  # (n_labels,)

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x @ self.weight + self.bias, dim=-1)  # (n, n_labels)


def as_embeddings(values: Any) -> torch.Tensor:
    """`embed`'s output as a float32 (n, d) tensor with unit rows."""
    x = torch.as_tensor(values, dtype=torch.float32)
    if x.dim() != 2:
        raise ValueError(f"embed returned shape {tuple(x.shape)}; expected (texts, dimensions)")
    return torch.nn.functional.normalize(x, dim=-1)


def embed_all(embed: EmbedFn, texts: Sequence[str], batch_size: int) -> torch.Tensor:
    """Embeddings of `texts`, `batch_size` per call (the cluster takes bounded requests)."""
    parts = [
        as_embeddings(embed(list(texts[i : i + batch_size])))
        for i in range(0, len(texts), batch_size)
    ]
    return torch.cat(parts)


def train_logistic_regression(
    x: torch.Tensor, y: torch.Tensor, n_labels: int, weight_decay: float, max_iter: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-balanced multinomial logistic regression by L-BFGS; deterministic (zero start)."""
    weight = torch.zeros(x.shape[1], n_labels, requires_grad=True)
    bias = torch.zeros(n_labels, requires_grad=True)
    counts = torch.bincount(y, minlength=n_labels).float()
    balance = counts.sum() / (n_labels * counts.clamp(min=1))  # rare intents weigh as much
    opt = torch.optim.LBFGS([weight, bias], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weight + bias, y, weight=balance)
        loss = loss + weight_decay * (weight**2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return weight.detach(), bias.detach()


def training_sentences(home: Home, config: ClassifierConfig) -> list[tuple[str, str]]:
    """(label, text) pairs: HA's templates and ours, filled with this home's names."""
    intents = home_intents(home)
    lists = {**intents.slot_lists, **home_slot_lists(home)}
    pairs = sample_sentences(
        intents, lists, config.ha_per_intent, seed=config.seed, rename=RENAMED_INTENTS
    )
    ours_dict = yaml.safe_load(SENTENCES_FILE.read_text(encoding="utf-8"))
    ha_rules = supported_templates_dict()["expansion_rules"]
    ours_dict["expansion_rules"] = {**ha_rules, **ours_dict.get("expansion_rules", {})}
    ours = Intents.from_dict(ours_dict)
    pairs += sample_sentences(
        ours, {**lists, **ours.slot_lists}, config.ours_per_intent, seed=config.seed + 1
    )
    unknown = {label for label, _ in pairs} - SUPPORTED_INTENTS - {CONVERSATION}
    if unknown:
        raise ValueError(f"{SENTENCES_FILE} has intents outside INTENTS.md: {sorted(unknown)}")
    return pairs


def home_names_digest(home: Home) -> str:
    """A hash of what training reads from a home: its areas' and devices' ids, names, aliases,
    areas and classes (for a `Home` built without a file, whose `digest` is empty)."""
    names = {
        "areas": sorted((a.id, a.names) for a in home.areas),
        "devices": sorted(
            (d.id, d.names, d.area or "", device_class(d) or "") for d in home.devices
        ),
    }
    return hashlib.sha256(json.dumps(names, sort_keys=True).encode()).hexdigest()


def cache_key(home: Home, embed_model: str, config: ClassifierConfig) -> str:
    """A hash of everything training reads (see the module docstring)."""
    parts = {
        "format": _CACHE_FORMAT,
        "home": home.digest or home_names_digest(home),
        "embed_model": embed_model,
        "sentences": hashlib.sha256(SENTENCES_FILE.read_bytes()).hexdigest(),
        "hassil": metadata.version("hassil"),
        "intents": metadata.version("home-assistant-intents"),
        "config": asdict(config),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


class IntentClassifier:
    """Trained (or loaded from the cache) at construction; `predict` embeds one sentence.

    `threshold`: the confidence needed to act (settings.intent_threshold); below it, or when
    the best class is `Conversation`, or when slots.py finds a needed slot missing, `predict`
    returns no intent and the sentence goes to the conversation.
    """

    def __init__(
        self,
        home: Home,
        embed: EmbedFn,
        cache_dir: Path,
        threshold: float,
        embed_model: str = "minilm",
        config: ClassifierConfig | None = None,
    ) -> None:
        self.home = home
        self.embed = embed
        self.threshold = threshold
        self.config = config or ClassifierConfig()
        self.slots = SlotFiller(home)
        self.key = cache_key(home, embed_model, self.config)
        self.cache_file = Path(cache_dir) / f"intent-classifier-{self.key[:24]}.pt"
        self.from_cache = False
        self.train_seconds = 0.0
        self.n_sentences = 0
        model = self._load()
        self.model = model if model is not None else self._train()

    def predict(self, text: str, area: str | None = None) -> tuple[Intent | None, float]:
        """(the intent, source="classifier", with its slots; or None) and the confidence of
        the best class. `area`: the area the voice came from, if known."""
        x = as_embeddings(self.embed([self.slots.delexicalize(text)]))
        probs = self.model.probabilities(x)[0]
        best = int(probs.argmax())
        label, confidence = self.model.labels[best], float(probs[best])
        if label == CONVERSATION or confidence < self.threshold:
            log.debug("classifier: %r -> %s %.2f: conversation", text, label, confidence)
            return None, confidence
        slots = self.slots.fill(label, text, area)
        if slots is None:
            log.debug("classifier: %r -> %s %.2f lacks a needed slot", text, label, confidence)
            return None, confidence
        return Intent(label, slots, source="classifier", confidence=confidence), confidence

    def _train(self) -> LinearModel:
        started = time.perf_counter()
        pairs = training_sentences(self.home, self.config)
        labels = tuple(sorted({label for label, _ in pairs}))
        # delexicalised sentences repeat (one per name): embed each distinct text once
        examples = sorted({(label, self.slots.delexicalize(text)) for label, text in pairs})
        texts = sorted({text for _, text in examples})
        index = {text: i for i, text in enumerate(texts)}
        x_all = embed_all(self.embed, texts, self.config.batch_size)
        x = x_all[[index[text] for _, text in examples]]
        y = torch.tensor([labels.index(label) for label, _ in examples])
        weight, bias = train_logistic_regression(
            x, y, len(labels), self.config.weight_decay, self.config.max_iter
        )
        model = LinearModel(labels, weight, bias)
        self.train_seconds = time.perf_counter() - started
        self.n_sentences = len(texts)
        log.info(
            "intent classifier trained on %d sentences (%d labels) in %.1f s",
            len(texts),
            len(labels),
            self.train_seconds,
        )
        self._save(model)
        return model

    def _load(self) -> LinearModel | None:
        if not self.cache_file.is_file():
            return None
        try:
            saved = torch.load(self.cache_file, weights_only=True)
            if saved["key"] != self.key:
                return None
            model = LinearModel(tuple(saved["labels"]), saved["weight"], saved["bias"])
        except (
            OSError,
            EOFError,
            RuntimeError,
            KeyError,
            TypeError,
            pickle.UnpicklingError,
        ) as exc:
            log.warning(
                "intent classifier cache %s unreadable (%s): retraining", self.cache_file, exc
            )
            return None
        self.from_cache = True
        log.info("intent classifier loaded from %s", self.cache_file)
        return model

    def _save(self, model: LinearModel) -> None:
        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_file.with_suffix(f".{os.getpid()}.tmp")
        state = {
            "key": self.key,
            "labels": list(model.labels),
            "weight": model.weight,
            "bias": model.bias,
        }
        torch.save(state, tmp)
        os.replace(tmp, self.cache_file)  # atomic: a crash never leaves half a cache file
