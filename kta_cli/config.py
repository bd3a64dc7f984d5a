"""Check config values (types and ranges) before any work starts; messages name the key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from kta_cli.errors import KtaError

_MISSING = object()


def value_at(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, default=_MISSING, throw_on_missing=False)


def section(cfg: DictConfig, key: str) -> dict[str, Any]:
    """A config section as a plain dict; a required value left as ??? is a one-line error."""
    try:
        return OmegaConf.to_container(
            OmegaConf.select(cfg, key), resolve=True, throw_on_missing=True
        )
    except MissingMandatoryValue as error:
        missing = error.full_key if error.full_key.startswith(f"{key}.") else f"{key}.{error.key}"
        raise KtaError(f"{missing} must be set, e.g. {missing}=<value>") from error


def require(
    cfg: DictConfig,
    key: str,
    kind: type | tuple[type, ...],
    *,
    check: Callable[[Any], bool] | None = None,
    rule: str = "",
    optional: bool = False,
) -> None:
    """Raise KtaError unless cfg[key] has type `kind` and passes `check` (described by `rule`)."""
    value = value_at(cfg, key)
    if value is _MISSING:
        if optional:
            return
        raise KtaError(f"{key} is missing from the config")
    if value is None and optional:
        return
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise KtaError(f"{key} must be {names}, got {value!r} ({type(value).__name__})")
    if check is not None and not check(value):
        raise KtaError(f"{key} must be {rule}, got {value!r}")


def positive(cfg: DictConfig, key: str, kind: type = int, optional: bool = False) -> None:
    require(cfg, key, kind, check=lambda v: v > 0, rule="> 0", optional=optional)


def fraction(cfg: DictConfig, key: str, *, upper_open: bool = True) -> None:
    if upper_open:
        require(cfg, key, float, check=lambda v: 0 <= v < 1, rule="in [0, 1)")
    else:
        require(cfg, key, float, check=lambda v: 0 <= v <= 1, rule="in [0, 1]")


def choice(cfg: DictConfig, key: str, options: tuple[str, ...]) -> None:
    require(cfg, key, str, check=lambda v: v in options, rule="one of " + ", ".join(options))


def validate_data(cfg: DictConfig) -> None:
    positive(cfg, "data.img_size")
    positive(cfg, "data.batch_size")
    positive(cfg, "data.eval_batch_size", optional=True)
    require(cfg, "data.num_workers", int, check=lambda v: v >= 0, rule=">= 0", optional=True)
    positive(cfg, "data.train_per_class", optional=True)
    for key in ("data.val_fraction", "data.test_fraction"):
        if value_at(cfg, key) is not _MISSING:
            fraction(cfg, key)


def validate_trainer(cfg: DictConfig) -> None:
    positive(cfg, "trainer.epochs")
    choice(cfg, "trainer.precision", ("fp32", "bf16", "fp16"))
    positive(cfg, "trainer.grad_clip", float, optional=True)
    positive(cfg, "trainer.max_steps", optional=True)
    positive(cfg, "trainer.threads", optional=True)
    positive(cfg, "trainer.log_every")
    choice(cfg, "trainer.early_stopping.mode", ("max", "min"))
    positive(cfg, "trainer.early_stopping.patience", optional=True)
    require(cfg, "trainer.device", str)


def validate_train(cfg: DictConfig) -> None:
    """Everything `kta train` reads, before a model or data set is built."""
    require(cfg, "model.name", str)
    require(cfg, "model.pretrained", bool)
    require(cfg, "model.drop_rate", float, check=lambda v: 0 <= v < 1, rule="in [0, 1)")
    validate_data(cfg)
    validate_trainer(cfg)
    positive(cfg, "optim.lr", float)
    require(cfg, "optim.weight_decay", float, check=lambda v: v >= 0, rule=">= 0")
    require(cfg, "sched.warmup_epochs", float, check=lambda v: v >= 0, rule=">= 0", optional=True)
    fraction(cfg, "loss.label_smoothing")
    require(cfg, "seed", int)
