"""The search space as Optuna distributions, the keys it may name, and overrides that parse
back to the values a trial drew."""

from __future__ import annotations

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from kta_cli.errors import KtaError
from kta_cli.sweep.space import as_override, check_keys, dotted_keys, parse_param, parse_space
from kta_cli.sweep.trials import epoch_metric


def test_each_type_becomes_its_distribution() -> None:
    lr = parse_param("optim.lr", {"type": "float", "low": 1e-4, "high": 0.1, "log": True})
    assert lr.distribution == FloatDistribution(1e-4, 0.1, log=True)
    epochs = parse_param("trainer.epochs", {"type": "int", "low": 2, "high": 8, "step": 3})
    assert epochs.distribution == IntDistribution(2, 8, step=3)
    assert epochs.grid() == [2, 5, 8]
    plain_list = parse_param("strategy", ["full", "freeze"])
    assert plain_list.distribution == CategoricalDistribution(["full", "freeze"])
    assert plain_list.grid() == ["full", "freeze"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"type": "float", "low": 1, "high": 0.5}, "inverted range, low 1.0 > high 0.5"),
        ({"type": "int", "low": 3, "high": 3}, "empty range"),
        ({"type": "float", "low": 0, "high": 1, "log": True}, "log: true needs low > 0"),
        ({"type": "float", "high": 1}, "needs low"),
        ({"type": "float", "low": 0, "high": 1, "stpe": 0.1}, "field 'stpe'; did you mean"),
        ({"type": "categorical", "choices": []}, "non-empty list"),
        ({"low": 0, "high": 1}, "must be {type: float|int|categorical"),
    ],
)
def test_malformed_entries_name_the_key(spec: dict, expected: str) -> None:
    with pytest.raises(KtaError, match="sweep.params.optim.lr") as error:
        parse_param("optim.lr", spec)
    assert expected in str(error.value)


def test_an_empty_space_and_a_continuous_grid_are_refused() -> None:
    with pytest.raises(KtaError, match="search space is empty"):
        parse_space({})
    lr = parse_param("optim.lr", {"type": "float", "low": 0.1, "high": 1})
    with pytest.raises(KtaError, match="sampler=grid needs a step for optim.lr"):
        lr.grid()


def test_keys_are_checked_against_the_config_and_its_groups() -> None:
    config = {"optim": {"lr": 0.1, "momentum": 0.9}, "strategy": {"name": "full"}}
    groups = {"strategy": ["freeze", "full"]}
    assert sorted(dotted_keys(config))[:3] == ["optim", "optim.lr", "optim.momentum"]
    check_keys(parse_space({"optim.lr": [0.1], "strategy": ["freeze"]}), config, groups, "train")
    with pytest.raises(KtaError, match="did you mean 'optim.momentum'"):
        check_keys(parse_space({"optim.momentun": [0.9]}), config, groups, "train")
    with pytest.raises(KtaError, match="unknown strategy option 'frees'"):
        check_keys(parse_space({"strategy": ["frees"]}), config, groups, "train")


def test_overrides_keep_every_digit_and_hydra_spelling() -> None:
    assert as_override("optim.lr", 0.00012345678901234567) == "optim.lr=0.00012345678901234567"
    assert as_override("model.pretrained", True) == "model.pretrained=true"
    assert as_override("strategy", "freeze") == "strategy=freeze"


def test_the_epoch_figure_that_tracks_the_metric() -> None:
    record = {"val_acc": 0.5, "val_loss": 1.0, "train_loss": 2.0}
    assert epoch_metric("best_val_acc", record) == "val_acc"
    assert epoch_metric("test_loss", record) == "val_loss"
    assert epoch_metric("train_loss", record) == "train_loss"
    assert epoch_metric("gap_closure", record) is None  # no per-epoch value: never pruned
