"""Intent recognition for the voice turn: what a transcribed sentence asks of the home.

`IntentRecognizer(home, embed, cache_dir, threshold).recognize(text)` tries, in order:

1. HA's English sentence templates with this home's names (templates.py; milliseconds);
2. for sentences the templates miss, the classifier (classifier.py): MiniLM embeddings from
   `embed` (on the cluster in production), a logistic regression trained from the same templates
   filled with this home's names (cached on disk), and the slot filler (slots.py). It acts only
   at `threshold` confidence or above and when the intent's needed slots are there;
3. otherwise None: the sentence is conversation.

Intents follow INTENTS.md: HA's names, one flat dict of slots resolved to ids and numbers, and
`source` ("templates" or "classifier") with a confidence (1.0 for templates).

`reading(transcript)` picks what was heard: Whisper's best reading, unless the templates reject
it and accept one of its close alternatives (transcript.ALTERNATIVE_MARGIN): the home's
sentences act as a grammar over the recogniser's n-best list.

`embed` is called only when the templates miss (and, on the first start for a home, to train):
the classifier is trained or loaded by `prepare()`, which the gateway calls at start-up (off
the event loop: the first start embeds about 1,300 sentences), or on the first template miss.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from pathlib import Path

from assistant.home.model import Home, Intent
from assistant.voice.intent.classifier import ClassifierConfig, EmbedFn, IntentClassifier
from assistant.voice.intent.templates import SUPPORTED_INTENTS, TemplateRecognizer
from assistant.voice.transcript import Transcript

__all__ = ["SUPPORTED_INTENTS", "IntentClassifier", "IntentRecognizer", "TemplateRecognizer"]

log = logging.getLogger(__name__)


class IntentRecognizer:
    """Templates first, then the classifier; None means conversation (see the module doc)."""

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
        self.templates = TemplateRecognizer(home)
        self._embed = embed
        self._cache_dir = Path(cache_dir)
        self._threshold = threshold
        self._embed_model = embed_model
        self._config = config
        self._classifier: IntentClassifier | None = None
        self._lock = threading.Lock()

    def prepare(self) -> IntentClassifier:
        """Train the classifier, or load it from the cache; idempotent and thread-safe."""
        with self._lock:
            if self._classifier is None:
                self._classifier = IntentClassifier(
                    self.home,
                    self._embed,
                    self._cache_dir,
                    self._threshold,
                    embed_model=self._embed_model,
                    config=self._config,
                )
            return self._classifier

    def recognize(self, text: str, area: str | None = None) -> Intent | None:
        """The intent `text` asks for, or None (conversation). `area`: the area id the voice
        came from, when known (a satellite's room), for "turn on the lights in here"."""
        if not text.strip():
            return None
        intent = self.templates.recognize(text, area)
        if intent is not None:
            return intent
        intent, confidence = self.prepare().predict(text, area)
        if intent is None:
            log.debug("no intent for %r (classifier confidence %.2f)", text, confidence)
        return intent

    def reading(self, heard: Transcript) -> Transcript:
        """`heard`, or `heard` with the first alternative the templates accept as its text
        when they do not accept the best reading (see the module doc)."""
        if not heard.alternatives or self.templates.recognize(heard.text) is not None:
            return heard
        for alternative in heard.alternatives:
            if self.templates.recognize(alternative.text) is not None:
                log.info("heard %r, read as %r (a home command)", heard.text, alternative.text)
                return replace(heard, text=alternative.text, first_guess=heard.text)
        return heard
