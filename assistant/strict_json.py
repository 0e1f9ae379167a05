"""Strict JSON for text we do not trust (HTTP bodies, Wyoming events).

`decode_json` refuses, with where and why, what Python's `json` module would let through and
the code behind it cannot use: text that is not UTF-8; the constants `NaN`, `Infinity`,
`-Infinity` and numbers that overflow a float (`1e999`); integers of more than
`MAX_INT_DIGITS` digits; strings holding a lone surrogate (`"\\ud800"`: not Unicode, and no
tokenizer, database or JSON encoder takes it); nesting deeper than `MAX_DEPTH`. A refusal is a
`json.JSONDecodeError`. `escaped` makes any text safe to put in an answer.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 64  # no request here nests deeper than about 6
MAX_INT_DIGITS = 40  # more than any seed, limit or count this API takes (2**64 has 20)


def decode_json(raw: bytes, root: str = "body") -> Any:
    """The JSON value in `raw`, or `json.JSONDecodeError` saying what is wrong and where
    (`root` names the whole value in messages: "body.texts[0] is not valid Unicode...")."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise json.JSONDecodeError(
            f"{root} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
            "",
            0,
        ) from None
    try:
        value = json.loads(
            text, parse_constant=_no_constant, parse_float=_finite, parse_int=_bounded_int
        )
    except RecursionError:
        raise _too_deep(root) from None
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # from the parse hooks
        raise json.JSONDecodeError(str(exc), "", 0) from None
    _check_tree(value, root)
    return value


def _too_deep(root: str) -> json.JSONDecodeError:
    return json.JSONDecodeError(f"{root} nests deeper than {MAX_DEPTH} levels", "", 0)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows: send a finite number")


def _finite(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise ValueError(f"the number {literal[:40]} is out of range: send a finite number")
    return value


def _bounded_int(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(
            f"an integer of {len(literal.lstrip('-'))} digits; at most {MAX_INT_DIGITS} are taken"
        )
    return int(literal)


def _check_tree(value: Any, root: str) -> None:
    """Depth and strings, without recursion (a deep body must not exhaust the stack here)."""
    stack: list[tuple[Any, str, int]] = [(value, root, 0)]
    while stack:
        item, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _too_deep(root)
        if isinstance(item, str):
            _check_text(item, where)
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_text(key, f"a key of {where}")
                stack.append((child, f"{where}.{_shown(key)}", depth + 1))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]", depth + 1) for i, child in enumerate(item))


def _check_text(text: str, where: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise json.JSONDecodeError(
            f"{where} is not valid Unicode: a lone surrogate "
            f"({escaped(text[exc.start])}) at character {exc.start}; send UTF-8 text",
            "",
            0,
        ) from None


def _shown(key: str) -> str:
    return escaped(key[:40])


def escaped(text: str) -> str:
    """`text` with lone surrogates written as `\\udxxx`: safe to put in an answer."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
