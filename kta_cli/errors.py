"""The one exception type for user mistakes, and the helpers that make its messages useful."""

from __future__ import annotations

import difflib
import re
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


def first_line(error: BaseException) -> str:
    """`Type: the message's first line`, cut to 160 characters: a library's reason inside one of
    kta's own lines (a compression step, an exporter, a compile that fell back to n/a)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    text = text if len(text) <= 160 else text[:157] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def one_line(error: BaseException) -> str:
    """A single readable line from an exception whose message may span several lines."""
    schema = schema_message(error)
    if schema:
        return schema
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    prefix = "kta_cli.errors.KtaError: "
    for line in reversed(lines):  # a KtaError re-raised from a DataLoader worker ends with it
        if line.startswith(prefix):
            return line[len(prefix) :]
    keep = [
        ln
        for ln in lines
        if not ln.startswith(
            ("full_key:", "object_type", "reference_type", "Set the environment variable")
        )
    ]
    return "; ".join(keep) or type(error).__name__


def schema_message(error: BaseException) -> str | None:
    """'optim.lr must be float, got 'fast'' or 'unknown config key data.styl; did you mean
    data.style?' from the OmegaConf error (maybe wrapped by Hydra) that a schema raised."""
    from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

    while error is not None and not isinstance(error, OmegaConfBaseException):
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    key = getattr(error, "full_key", None)
    if error is None or not key:
        return None
    text = str(error).splitlines()[0]
    wrong_type = re.match(r"Value '(.*?)' (?:of type '\w+' )?could not be converted to (\w+)", text)
    if wrong_type:
        return f"{key} must be {wrong_type.group(2).lower()}, got '{wrong_type.group(1)}'"
    if isinstance(error, ConfigKeyError) and error.object_type is not None:
        import dataclasses

        parent = key.rpartition(".")[0]
        known = [
            f"{parent}.{f.name}" if parent else f.name
            for f in dataclasses.fields(error.object_type)
        ]
        return did_you_mean(key, known, what="config key")
    return f"{key}: {text}"
