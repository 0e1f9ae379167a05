"""The classifier behind the templates, with the real packaged MiniLM run in process (in the
gateway the embeddings come from the cluster): paraphrases, open questions, the cache, and
accuracy on paraphrases written for this test, never sampled from the templates nor tuned on."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch
from hassil import Intents

from assistant.home.model import Home
from assistant.voice.intent import IntentRecognizer
from assistant.voice.intent.classifier import IntentClassifier
from assistant.voice.intent.sampling import sample_sentences
from assistant.voice.intent.templates import home_slot_lists
from edge_worker.models.catalog import load_model
from tests.voice.test_intent_templates import make_home

THRESHOLD = 0.6  # settings.intent_threshold's default


class CountingEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings (mean-pooled, L2-normalised, as the cluster's
    embed route makes them), counting the sentences it is asked for."""

    def __init__(self) -> None:
        loaded = load_model("minilm")
        assert loaded.tokenizer is not None
        self.model, self.tokenizer = loaded.model, loaded.tokenizer
        self.sentences = 0

    def __call__(self, texts: list[str]) -> torch.Tensor:
        self.sentences += len(texts)
        batch = self.tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state  # (B, T, 384)
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (B, 384)
        return torch.nn.functional.normalize(pooled, dim=-1)


@pytest.fixture(scope="module")
def embed() -> CountingEmbedder:
    return CountingEmbedder()


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("intent-cache")


@pytest.fixture(scope="module")
def recognizer(embed: CountingEmbedder, cache_dir: Path) -> IntentRecognizer:
    recognizer = IntentRecognizer(make_home(), embed, cache_dir, THRESHOLD)
    recognizer.prepare()
    return recognizer


def test_a_paraphrase_the_templates_miss_is_recognised_by_the_classifier(
    recognizer: IntentRecognizer,
) -> None:
    text = "could you make the kitchen a bit brighter"

    intent = recognizer.recognize(text)

    assert recognizer.templates.recognize(text) is None
    assert intent is not None
    assert (intent.name, intent.source) == ("HassLightSet", "classifier")
    assert intent.slots["area"] == "kitchen"
    assert intent.slots["brightness_step"] > 0
    assert THRESHOLD <= intent.confidence <= 1.0


@pytest.mark.parametrize(
    "text", ["what is the capital of France", "tell me a joke about cats", "who wrote Hamlet"]
)
def test_an_open_question_is_left_to_the_conversation(
    recognizer: IntentRecognizer, text: str
) -> None:
    assert recognizer.recognize(text) is None


def test_a_template_match_never_calls_the_embedder(
    recognizer: IntentRecognizer, embed: CountingEmbedder
) -> None:
    before = embed.sentences

    intent = recognizer.recognize("turn on the kitchen light")

    assert intent is not None and intent.source == "templates"
    assert embed.sentences == before


def test_the_second_start_loads_the_classifier_without_embedding_its_training_set(
    recognizer: IntentRecognizer, embed: CountingEmbedder, cache_dir: Path
) -> None:
    first = recognizer.prepare()
    before = embed.sentences

    second = IntentClassifier(make_home(), embed, cache_dir, THRESHOLD)

    assert embed.sentences == before
    assert (first.from_cache, second.from_cache) == (False, True)
    assert second.model.labels == first.model.labels
    assert torch.equal(second.model.weight, first.model.weight)


def test_a_home_with_a_new_name_trains_again(
    recognizer: IntentRecognizer, embed: CountingEmbedder, cache_dir: Path
) -> None:
    home = make_home()
    renamed = dataclasses.replace(home.devices[0], aliases=("big light",))
    changed = Home(home.name, home.areas, (renamed, *home.devices[1:]))
    before = embed.sentences

    classifier = IntentClassifier(changed, embed, cache_dir, THRESHOLD)

    assert not classifier.from_cache
    assert embed.sentences - before == classifier.n_sentences > 0


def test_an_unreadable_cache_file_is_replaced_by_training_again(
    recognizer: IntentRecognizer, embed: CountingEmbedder, cache_dir: Path
) -> None:
    cache_file = recognizer.prepare().cache_file
    cache_file.write_bytes(b"not a torch file")

    classifier = IntentClassifier(make_home(), embed, cache_dir, THRESHOLD)

    assert not classifier.from_cache
    assert IntentClassifier(make_home(), embed, cache_dir, THRESHOLD).from_cache


def test_training_samples_fill_a_name_only_with_devices_the_template_takes() -> None:
    intents = Intents.from_dict(
        {
            "language": "en",
            "intents": {
                "HassTurnOn": {
                    "data": [
                        {"sentences": ["lock [the] {name}"], "requires_context": {"domain": "lock"}}
                    ]
                }
            },
        }
    )

    pairs = sample_sentences(intents, home_slot_lists(make_home()), per_intent=20)

    assert {text for _, text in pairs} == {
        "lock Front door",
        "lock the Front door",
        "lock front door lock",
        "lock the front door lock",
    }


# Paraphrases written for this test after the classifier's settings were chosen (on a separate
# set of our own); each one misses the templates. Expected: (intent, slots that must be there).
HELD_OUT: list[tuple[str, str, dict[str, Any]]] = [
    (
        "would you mind brightening up the living room a touch",
        "HassLightSet",
        {"area": "living_room"},
    ),
    ("the office is too gloomy, more light please", "HassLightSet", {"area": "office"}),
    ("tone down the lights in the kitchen", "HassLightSet", {"area": "kitchen"}),
    ("can the bedroom light be a little softer", "HassLightSet", {"name": "light.bedroom"}),
    ("bring the desk lamp down to ten percent", "HassLightSet", {"brightness": 10}),
    ("get those counter lights on", "HassTurnOn", {"name": "light.kitchen_counter"}),
    ("the floor lamp needs to be on", "HassTurnOn", {"name": "light.living_room_lamp"}),
    ("could you shut the coffee maker off", "HassTurnOff", {"name": "switch.coffee_maker"}),
    ("go ahead and turn everything off in the garage", "HassTurnOff", {"area": "garage"}),
    ("stop the ceiling fan please", "HassTurnOff", {"name": "fan.bedroom"}),
    ("please close up the garage", "HassTurnOff", {"area": "garage"}),
    ("is anything still on in the kitchen", "HassGetState", {"area": "kitchen"}),
    ("have i locked the front door", "HassGetState", {"name": "lock.front_door"}),
    ("tell me whether the garage door is shut", "HassGetState", {"name": "cover.garage_door"}),
    ("warm the place up a bit", "HassClimateSetTemperature", {}),
    ("it's really chilly, can you turn up the heat", "HassClimateSetTemperature", {}),
    ("drop the thermostat to eighteen degrees", "HassClimateSetTemperature", {"temperature": 18.0}),
    ("what's the thermostat reading", "HassClimateGetTemperature", {}),
    ("tell me how warm the living room is", "HassClimateGetTemperature", {"area": "living_room"}),
    ("can you make the music a little quieter", "HassSetVolume", {}),
    ("pump up the volume", "HassSetVolume", {}),
    ("i can barely hear the stereo", "HassSetVolume", {}),
    ("set the speaker to half volume", "HassSetVolume", {}),
    ("stop the song for a minute", "HassMediaPause", {}),
    ("pick up the music where it left off", "HassMediaUnpause", {}),
    ("play the following track", "HassMediaNext", {}),
    ("i want to hear that last song again", "HassMediaPrevious", {}),
    ("let me know in fifteen minutes", "HassStartTimer", {"minutes": 15}),
    ("give me a three minute countdown", "HassStartTimer", {"minutes": 3}),
    ("how much longer on the pasta timer", "HassTimerStatus", {}),
    ("call off the timer", "HassCancelTimer", {}),
    ("wipe out all of the running timers", "HassCancelAllTimers", {}),
    ("what time have you got", "HassGetCurrentTime", {}),
    ("what is the date again", "HassGetCurrentDate", {}),
    ("ah, don't worry about it", "HassNevermind", {}),
    ("put the fan on its lowest setting", "HassFanSetSpeed", {"name": "fan.bedroom"}),
    ("move the garage door to the halfway point", "HassSetPosition", {"position": 50}),
]
# Not commands, or commands the home has no intent for: all belong to the conversation.
HELD_OUT_CONVERSATION = [
    "who is the president of brazil",
    "can you sing me a song",
    "what's the meaning of life",
    "how do airplanes stay in the air",
    "give me a recipe for banana bread",
    "what's the population of japan",
    "are you a robot",
    "my head hurts, what should i take",
    "what time does the bakery open",
    "how many days until christmas",
    "play some jazz",
    "order more coffee filters",
    "call my mom",
    "what's the weather like outside",
    "is it going to rain today",
    "how long does it take to boil an egg",
    "what's the best way to light a fireplace",
    "set the table for dinner",
    "what's fifteen percent of eighty",
    "i'm going to bed, good night",
]


def test_held_out_paraphrases_miss_the_templates(recognizer: IntentRecognizer) -> None:
    hits = [text for text, _, _ in HELD_OUT if recognizer.templates.recognize(text) is not None]

    assert hits == []


def test_held_out_paraphrases_are_mostly_recognised_and_never_misrecognised(
    recognizer: IntentRecognizer,
) -> None:
    results = [(recognizer.recognize(text), name, slots) for text, name, slots in HELD_OUT]

    right = [
        i for i, name, slots in results if i and i.name == name and slots.items() <= i.slots.items()
    ]
    wrong = [i for i, name, _ in results if i and i.name != name]

    assert len(right) / len(HELD_OUT) >= 0.80  # measured 0.84-0.89 (see the report)
    assert len(wrong) <= 1


def test_held_out_non_commands_are_left_to_the_conversation(recognizer: IntentRecognizer) -> None:
    acted = [text for text in HELD_OUT_CONVERSATION if recognizer.recognize(text) is not None]

    assert len(acted) <= 1
