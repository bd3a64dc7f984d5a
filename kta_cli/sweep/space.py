"""The search space: configs/sweep/<file>.yaml's `params` as Optuna distributions, checked
against the searched command's composed config before any trial runs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import Trial

from kta_cli.errors import KtaError, did_you_mean

FIELDS = {
    "float": {"type", "low", "high", "log", "step"},
    "int": {"type", "low", "high", "log", "step"},
    "categorical": {"type", "choices"},
}


@dataclass(frozen=True)
class Param:
    key: str  # a dotted config key (optim.lr) or a config group (strategy)
    distribution: BaseDistribution

    def suggest(self, trial: Trial) -> Any:
        dist = self.distribution
        if isinstance(dist, CategoricalDistribution):
            return trial.suggest_categorical(self.key, dist.choices)
        suggest = trial.suggest_float if isinstance(dist, FloatDistribution) else trial.suggest_int
        return suggest(self.key, dist.low, dist.high, log=dist.log, step=dist.step)

    def grid(self) -> list[Any]:
        """The values sampler=grid walks through."""
        dist = self.distribution
        if isinstance(dist, CategoricalDistribution):
            return list(dist.choices)
        if dist.step is None:
            raise KtaError(
                f"sweep.sampler=grid needs a step for {self.key} (or type: categorical with "
                "choices); a continuous range has no grid"
            )
        values = np.arange(dist.low, dist.high + dist.step / 2, dist.step)
        return [int(v) if isinstance(dist, IntDistribution) else float(v) for v in values]


def parse_space(params: dict[str, Any]) -> list[Param]:
    """Every entry of sweep.params as a Param; KtaError naming the key for a malformed one."""
    if not params:
        raise KtaError("the search space is empty: give sweep=<file> with params (configs/sweep/)")
    return [parse_param(str(key), spec) for key, spec in params.items()]


def parse_param(key: str, spec: Any) -> Param:
    where = f"sweep.params.{key}"
    if isinstance(spec, list):  # a plain list is a categorical choice
        spec = {"type": "categorical", "choices": spec}
    if not isinstance(spec, dict) or "type" not in spec:
        raise KtaError(f"{where} must be {{type: float|int|categorical, ...}}, got {spec!r}")
    kind = spec["type"]
    if kind not in FIELDS:
        raise KtaError(did_you_mean(str(kind), FIELDS, what=f"{where}.type"))
    unknown = sorted(set(spec) - FIELDS[kind])
    if unknown:
        raise KtaError(did_you_mean(unknown[0], FIELDS[kind], what=f"{where} field"))
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise KtaError(f"{where}.choices must be a non-empty list, got {choices!r}")
        return Param(key, CategoricalDistribution(choices))
    return Param(key, numeric_distribution(where, kind, spec))


def numeric_distribution(where: str, kind: str, spec: dict[str, Any]) -> BaseDistribution:
    """float or int with low < high (an inverted or empty range says so), log > 0."""
    number = float if kind == "float" else int
    try:
        low, high = number(spec["low"]), number(spec["high"])
    except KeyError as missing:
        raise KtaError(f"{where} needs {missing.args[0]}: ({kind} with low and high)") from None
    except (TypeError, ValueError):
        raise KtaError(f"{where}: low and high must be {kind}s, got {spec}") from None
    if low > high:
        raise KtaError(f"{where}: inverted range, low {low} > high {high}")
    if low == high:
        raise KtaError(f"{where}: empty range, low = high = {low}; give low < high")
    log, step = bool(spec.get("log", False)), spec.get("step")
    if log and low <= 0:
        raise KtaError(f"{where}: log: true needs low > 0, got {low}")
    if log and step is not None:
        raise KtaError(f"{where}: log and step do not combine (Optuna); drop one")
    if step is not None and not step > 0:
        raise KtaError(f"{where}.step must be > 0, got {step}")
    if kind == "float":
        return FloatDistribution(low, high, log=log, step=None if step is None else float(step))
    return IntDistribution(low, high, log=log, step=1 if step is None else int(step))


def check_keys(
    space: list[Param], config: dict[str, Any], groups: dict[str, list[str]], command: str
) -> None:
    """Each key names a config group (its choices must be options of it) or a key of the
    command's composed config; did-you-mean against both."""
    keys = sorted(dotted_keys(config))
    for param in space:
        if param.key in groups:
            options = groups[param.key]
            for choice in getattr(param.distribution, "choices", ()):
                if options and str(choice) not in options:
                    raise KtaError(did_you_mean(str(choice), options, what=f"{param.key} option"))
            continue
        if param.key not in keys:
            message = did_you_mean(param.key, [*keys, *groups], what=f"kta {command} config key")
            raise KtaError(message.split(" (options:")[0] + " (in the search space)")


def dotted_keys(node: Any, prefix: str = "") -> Iterator[str]:
    """optim, optim.lr, ... of a plain nested dict (every level, so a list value counts)."""
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        name = f"{prefix}{key}"
        yield name
        yield from dotted_keys(value, f"{name}.")


def as_override(key: str, value: Any) -> str:
    """key=value as Hydra parses it back to the same value (repr keeps a float's digits)."""
    if isinstance(value, bool):
        return f"{key}={str(value).lower()}"
    if isinstance(value, float):
        return f"{key}={value!r}"
    return f"{key}={value}"
