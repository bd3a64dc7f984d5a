"""Range rules that sit beside the field they guard, and the one walk that enforces them.

Types and unknown keys are OmegaConf's job (structured configs refuse them while composing);
what a type cannot say (> 0, in [0, 1), one of ...) is a rule in the field's metadata.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from typing import Any

from kta_cli.errors import KtaError

Rule = tuple[str, Callable[[Any], bool]]


def ruled(default: Any, rule: Rule, *, each: bool = False) -> Any:
    """A dataclass field with `default` and a rule (checked on every element when `each`)."""
    metadata = {"rule": rule, "each": each}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def positive(default: Any) -> Any:
    return ruled(default, ("> 0", lambda v: v > 0))


def non_negative(default: Any) -> Any:
    return ruled(default, (">= 0", lambda v: v >= 0))


def fraction(default: float, *, closed: bool = False) -> Any:
    if closed:
        return ruled(default, ("in [0, 1]", lambda v: 0 <= v <= 1))
    return ruled(default, ("in [0, 1)", lambda v: 0 <= v < 1))


def unit_open_closed(default: float) -> Any:
    return ruled(default, ("in (0, 1]", lambda v: 0 < v <= 1))


def one_of(default: str, *others: str) -> Any:
    """A field whose value is `default` or one of `others`."""
    options = tuple(dict.fromkeys((default, *others)))
    return dataclasses.field(default=default, metadata={"options": options})


def check_fields(node: Any, prefix: str = "") -> None:
    """Raise KtaError for the first field of `node` (a dataclass tree) that breaks its rule."""
    if isinstance(node, (list, tuple)):
        for i, item in enumerate(node):
            check_fields(item, f"{prefix}[{i}]")
        return
    if isinstance(node, dict):
        for key, item in node.items():
            check_fields(item, f"{prefix}.{key}" if prefix else str(key))
        return
    if not dataclasses.is_dataclass(node):
        return
    for field in dataclasses.fields(node):
        value, key = getattr(node, field.name), f"{prefix}.{field.name}" if prefix else field.name
        check_value(field.metadata, value, key)
        check_fields(value, key)
    if callable(getattr(node, "check", None)):  # rules across fields (a dataclass's own)
        node.check()


def check_value(metadata: Any, value: Any, key: str) -> None:
    if value is None:
        return
    options = metadata.get("options")
    if options and value not in options:
        close = difflib.get_close_matches(str(value), options, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise KtaError(f"{key} must be one of {', '.join(options)}, got {value!r}{hint}")
    if "rule" not in metadata:
        return
    rule, test = metadata["rule"]
    if not metadata["each"]:
        items = [("", value)]
    elif isinstance(value, dict):
        items = [(f".{k}", v) for k, v in value.items()]
    else:
        items = [(f"[{i}]", v) for i, v in enumerate(value)]
    for where, item in items:
        if not test(item):
            raise KtaError(f"{key}{where} must be {rule}, got {item!r}")
