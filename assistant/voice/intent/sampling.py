"""Training sentences for the intent classifier, drawn at random from hassil templates filled
with this home's names.

hassil's own sampler (`hassil.sample_intents` / `sample_expression`) enumerates every expansion
of a template in order (an `itertools.product`): complete, but a single HA template expands to
thousands of sentences, and a truncated enumeration only varies its last words. The classifier
needs a few dozen varied sentences per intent, so this module walks the same parsed templates
(`hassil.Sentence` expressions, HA's expansion rules and slot lists) choosing at random at every
alternative, optional, permutation, list value and number (digits or rbnf words, as hassil
spells them). Names respect a block's `requires_context` (a `{name}` in "lock [the] {name}" is
only ever a lock) and wildcards get a few plausible fillers ("pizza" for a timer's name).
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from hassil import Intents, RangeSlotList, TextSlotList, WildcardSlotList
from hassil.expression import (
    Alternative,
    Expression,
    ListReference,
    Permutation,
    RuleReference,
    Sentence,
    Sequence,
    TextChunk,
)
from hassil.intents import IntentData, SlotList
from hassil.numbers import get_rbnf_engine
from hassil.util import check_required_context, normalize_whitespace

_WILDCARD_FILLERS = {
    "timer_name": ("pizza", "laundry", "tea", "eggs", "pasta", "bread", "nap", "homework"),
}
_MAX_TRIES = 4  # per wanted sentence: duplicates are dropped, so a small template runs dry


class _Walker:
    """One random expansion of an expression, with the slot lists of one template block."""

    def __init__(
        self,
        rng: random.Random,
        slot_lists: dict[str, SlotList],
        rules: dict[str, Sentence],
        language: str,
    ) -> None:
        self.rng = rng
        self.slot_lists = slot_lists
        self.rules = rules
        self.engine = get_rbnf_engine(language)

    def text(self, expression: Expression) -> str:
        if isinstance(expression, TextChunk):
            return expression.original_text
        if isinstance(expression, Alternative):
            return self.text(self.rng.choice(expression.items))
        if isinstance(expression, Permutation):
            items = list(expression.items)
            self.rng.shuffle(items)
            return "".join(self.text(item) for item in items)
        if isinstance(expression, Sequence):
            return "".join(self.text(item) for item in expression.items)
        if isinstance(expression, RuleReference):
            return self.text(self.rules[expression.rule_name].expression)
        if isinstance(expression, ListReference):
            return self._list_value(expression.list_name)
        raise ValueError(f"unexpected template expression {type(expression).__name__}")

    def _list_value(self, list_name: str) -> str:
        slot_list = self.slot_lists.get(list_name)
        if isinstance(slot_list, TextSlotList):
            if not slot_list.values:
                raise LookupError(list_name)
            return self.text(self.rng.choice(slot_list.values).text_in)
        if isinstance(slot_list, RangeSlotList):
            numbers = list(slot_list.get_numbers())
            number = self.rng.choice(numbers)
            if slot_list.words and (not slot_list.digits or self.rng.random() < 0.5):
                spelled = self.engine.format_number(number).text_by_ruleset.values()
                return self.rng.choice(sorted(spelled)).replace("-", " ")
            return str(number)
        if isinstance(slot_list, WildcardSlotList):
            return self.rng.choice(_WILDCARD_FILLERS.get(list_name, ("something",)))
        raise LookupError(list_name)


def _lists_for_block(slot_lists: dict[str, SlotList], block: IntentData) -> dict[str, SlotList]:
    """The slot lists with `{name}` narrowed to the names a block's `requires_context` takes."""
    lists = {**slot_lists, **block.slot_lists}
    names = lists.get("name")
    if block.requires_context and isinstance(names, TextSlotList):
        kept = [
            value
            for value in names.values
            if check_required_context(
                block.requires_context, value.context or {}, allow_missing_keys=True
            )
        ]
        lists["name"] = TextSlotList(name="name", values=kept)
    return lists


def sample_sentences(
    intents: Intents,
    slot_lists: dict[str, SlotList],
    per_intent: int,
    seed: int = 0,
    rename: dict[str, str] | None = None,
) -> list[tuple[str, str]]:
    """Up to `per_intent` distinct random sentences for every label, as (label, text) pairs;
    a label is an intent's name, or `rename[name]` (several intents may share one label and its
    cap). Deterministic for a given seed, intents and lists."""
    rename = rename or {}
    rng = random.Random(seed)
    rules = {**intents.expansion_rules}
    by_label: dict[str, list[tuple[IntentData, Sentence]]] = {}
    for intent in intents.intents.values():
        label = rename.get(intent.name, intent.name)
        for block in intent.data:
            by_label.setdefault(label, []).extend((block, s) for s in block.sentences)
    pairs: list[tuple[str, str]] = []
    for label in sorted(by_label):
        pairs.extend(
            (label, text)
            for text in _sample_label(
                by_label[label], slot_lists, rules, per_intent, rng, intents.language
            )
        )
    return pairs


def _sample_label(
    templates: list[tuple[IntentData, Sentence]],
    slot_lists: dict[str, SlotList],
    rules: dict[str, Sentence],
    wanted: int,
    rng: random.Random,
    language: str,
) -> Iterable[str]:
    """Distinct sentences, templates taken in turn (shuffled) so every template is used."""
    seen: set[str] = set()
    order = list(range(len(templates)))
    rng.shuffle(order)
    for attempt in range(wanted * _MAX_TRIES):
        if len(seen) >= wanted:
            break
        block, sentence = templates[order[attempt % len(order)]]
        walker = _Walker(
            rng, _lists_for_block(slot_lists, block), {**rules, **block.expansion_rules}, language
        )
        try:
            text = normalize_whitespace(walker.text(sentence.expression)).strip()
        except LookupError:  # a list with no value for this block (no such device here)
            continue
        if text and text not in seen:
            seen.add(text)
            yield text
