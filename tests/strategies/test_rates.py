"""The learning rate of every parameter group: layer decay, head multiplier, LP-FT phases."""

from __future__ import annotations

import pytest
import torch

from kta_cli.strategies.discriminative import discriminative
from kta_cli.strategies.schedules import gradual_unfreeze, lp_ft
from tests.strategies.conftest import run_plan, snapshot, tiny_model


def test_layer_decay_rates_by_hand() -> None:
    model = tiny_model()
    plan = discriminative(model, lr=0.1, layer_decay=0.5, head_lr_mult=2.0)
    trainer = run_plan(model, plan, lr=0.1)
    rates = {g["name"]: g["lr"] for g in trainer.optimizer.param_groups}
    # test_resnet has five blocks below the head: stem, layer1.0 ... layer4.0
    assert rates == pytest.approx(
        {
            "conv1+bn1": 0.1 * 0.5**5,
            "layer1.0": 0.1 * 0.5**4,
            "layer2.0": 0.1 * 0.5**3,
            "layer3.0": 0.1 * 0.5**2,
            "layer4.0": 0.1 * 0.5,
            "head": 0.2,
        }
    )
    covered = sum(len(g["params"]) for g in plan.param_groups)
    assert covered == len(list(model.parameters()))


def test_gradual_unfreeze_groups_start_frozen_at_their_rates() -> None:
    model = tiny_model()
    plan = gradual_unfreeze(model, lr=0.1, every=1, layer_decay=0.5)
    assert [g["lr"] for g in plan.param_groups][-2:] == pytest.approx([0.05, 0.1])
    assert not any(p.requires_grad for g in plan.param_groups[:-1] for p in g["params"])
    assert all(p.requires_grad for p in plan.param_groups[-1]["params"])


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_lp_ft_probes_then_fine_tunes_everything_at_the_lower_rate(schedule: str) -> None:
    model = tiny_model()
    plan = lp_ft(model, lr=0.1, probe_epochs=1, ft_lr_mult=0.1)
    start = snapshot(model)
    seen = {}

    def watch(epoch: int, trainer) -> None:  # runs after the strategy's hook
        seen[epoch] = (
            snapshot(model),
            {g["name"]: g["lr"] for g in trainer.optimizer.param_groups},
        )

    trainer = run_plan(model, plan, epochs=3, schedule=schedule, extra_hooks=[watch])
    after_probe, ft_rates = seen[1]
    body = [k for k in start if not k.startswith("fc.")]
    assert all(torch.equal(start[k], after_probe[k]) for k in body)  # probe: body untouched
    assert not torch.equal(start["fc.weight"], after_probe["fc.weight"])
    end = snapshot(model)
    assert not torch.equal(after_probe["layer1.0.conv1.weight"], end["layer1.0.conv1.weight"])
    if schedule == "constant":
        assert seen[0][1] == pytest.approx({"body": 0.01, "head": 0.1})
        assert ft_rates == pytest.approx({"body": 0.01, "head": 0.01})
    else:  # the schedule moves both, and the head now follows the body's lower rate
        assert ft_rates["head"] == pytest.approx(ft_rates["body"])
        last = {g["name"]: g["lr"] for g in trainer.optimizer.param_groups}
        assert last["head"] == pytest.approx(last["body"])
