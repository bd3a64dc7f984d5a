"""Every strategy and task file composes with the real train config and builds a plan."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from kta_cli.overrides import config_dir
from tests.strategies.conftest import tiny_model

STRATEGY_FILES = sorted(p.stem for p in (config_dir() / "strategy").glob("*.yaml"))
NEEDS = {"partial": ["strategy.frozen_stages=1"]}


def composed(overrides: list[str]):
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return compose("train", overrides=overrides)


@pytest.mark.parametrize("name", STRATEGY_FILES)
def test_every_strategy_file_builds_a_plan(name: str) -> None:
    cfg = composed([f"strategy={name}", "optim.lr=0.2", *NEEDS.get(name, [])])
    model = tiny_model()
    plan = instantiate(cfg.strategy)(model)
    plan.check_trainable(name)
    assert max(g["lr"] for g in plan.param_groups) == pytest.approx(0.2)  # the head's rate
    assert all(g.get("name") for g in plan.param_groups)


def test_the_strategy_list_is_the_issue_list() -> None:
    assert set(STRATEGY_FILES) >= {
        "full",
        "scratch",
        "freeze",
        "linear_probe",
        "partial",
        "discriminative",
        "gradual_unfreeze",
        "lp_ft",
    }


@pytest.mark.parametrize("name", ["classify", "multitask"])
def test_task_files_compose(name: str) -> None:
    assert composed([f"task={name}"]).task.name == name
