"""The one exception type for user mistakes, and the helpers that make its messages useful."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class KtaError(Exception):
    """A mistake the user can fix: printed as one line on stderr, exit code 2."""


def did_you_mean(word: str, options: Iterable[str], what: str = "option") -> str:
    """'unknown optim 'sgdd'; did you mean 'sgd'? (options: adamw, sgd)'."""
    options = sorted(set(options))
    close = difflib.get_close_matches(word, options, n=3, cutoff=0.6)
    message = f"unknown {what} '{word}'"
    if close:
        message += "; did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
    if len(options) <= 30:
        message += f" (options: {', '.join(options)})"
    return message
