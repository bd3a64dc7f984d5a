"""Which parameters train, which stay bit-identical (BatchNorm statistics included)."""

from __future__ import annotations

import pytest
import torch

from kta_cli.errors import KtaError
from kta_cli.strategies.base import RANDOM_BODY, full, scratch
from kta_cli.strategies.discriminative import discriminative
from kta_cli.strategies.freezing import freeze, linear_probe, partial
from kta_cli.strategies.schedules import gradual_unfreeze, lp_ft
from tests.strategies.conftest import run_plan, snapshot, tiny_model

BODY = ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4.")

# strategy, options, epochs, parts that must stay bit-identical, parts that must change
CASES = [
    (freeze, {}, 1, BODY, ("fc.",)),
    (freeze, {"head": "mlp", "head_hidden": 8}, 1, BODY, ("fc.",)),
    (linear_probe, {}, 1, BODY, ("fc.",)),
    (
        partial,
        {"frozen_stages": 2},
        1,
        ("conv1.", "bn1.", "layer1."),
        ("layer2.", "layer4.", "fc."),
    ),
    (partial, {"trainable_from": "layer3"}, 1, BODY[:4], ("layer3.", "layer4.", "fc.")),
    (gradual_unfreeze, {"every": 1}, 2, BODY[:5], ("layer4.", "fc.")),
    (gradual_unfreeze, {"every": 2}, 2, BODY, ("fc.",)),
]


def changed(before: dict, after: dict, prefix: str) -> bool:
    return any(not torch.equal(before[k], after[k]) for k in before if k.startswith(prefix))


@pytest.mark.parametrize(("strategy", "options", "epochs", "frozen", "trained"), CASES)
def test_frozen_parts_are_bit_identical(strategy, options, epochs, frozen, trained) -> None:
    model = tiny_model()
    plan = strategy(model, lr=0.1, **options)
    before = snapshot(model)
    run_plan(model, plan, epochs=epochs)
    after = snapshot(model)
    for key in before:
        if key.startswith(frozen):  # weights and running_mean/var/num_batches_tracked
            assert torch.equal(before[key], after[key]), f"{key} changed"
    for prefix in trained:
        assert changed(before, after, prefix), f"{prefix} did not train"


@pytest.mark.parametrize(
    ("strategy", "options", "with_grad"),
    [
        (freeze, {}, ("fc.",)),
        (partial, {"trainable_from": "layer4"}, ("layer4.", "fc.")),
        (full, {}, (*BODY, "fc.")),
    ],
)
def test_only_trainable_parameters_receive_gradients(strategy, options, with_grad) -> None:
    model = tiny_model()
    strategy(model, lr=0.1, **options)
    model(torch.randn(4, 3, 16, 16)).sum().backward()
    for name, param in model.named_parameters():
        assert (param.grad is not None) == name.startswith(with_grad), name


def test_linear_probe_keeps_the_whole_body_in_eval_mode() -> None:
    model = tiny_model()
    model.drop_rate = 0.5  # dropout before the head would make probe features noisy
    plan = linear_probe(model, lr=0.1)
    model.train()
    plan.epoch_hooks[0](0, None)
    assert not model.training and model.fc.training
    assert all(not m.training for m in model.layer1.modules())


def test_freeze_with_a_frozen_head_leaves_nothing_trainable() -> None:
    model = tiny_model()
    plan = freeze(model, lr=0.1, head_lr_mult=0.0)
    with pytest.raises(KtaError, match="leaves nothing trainable"):
        plan.check_trainable("freeze")


def test_scratch_forgets_the_given_weights_and_full_keeps_them() -> None:
    model = tiny_model()
    before = snapshot(model)
    full(model, lr=0.1)
    assert all(torch.equal(before[k], v) for k, v in snapshot(model).items())
    plan = scratch(model, lr=0.1)
    assert not plan.uses_given_weights
    assert not torch.equal(before["layer1.0.conv1.weight"], model.layer1[0].conv1.weight)


def test_new_mlp_head_keeps_the_class_count() -> None:
    model = tiny_model(num_classes=7)
    plan = freeze(model, lr=0.1, head="mlp", head_hidden=16)
    assert plan.head == {"kind": "mlp", "hidden": 16}
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 7)
    assert [p.shape[0] for p in plan.param_groups[0]["params"]] == [16, 16, 7, 7]


@pytest.mark.parametrize(
    ("strategy", "options", "freezes"),
    [
        (freeze, {}, True),
        (linear_probe, {}, True),
        (partial, {"frozen_stages": 2}, True),
        (partial, {"frozen_stages": 0}, False),
        (gradual_unfreeze, {}, True),
        (lp_ft, {"probe_epochs": 1}, True),
        (lp_ft, {"probe_epochs": 0}, False),
        (full, {}, False),
        (discriminative, {}, False),
    ],
)
def test_a_frozen_random_body_is_said(strategy, options, freezes) -> None:
    """Every strategy that freezes or probes the body says so when the body was not loaded,
    and says nothing when it was (or when the whole model trains anyway)."""
    plan = strategy(tiny_model(), **options)
    assert plan.body_note(body_loaded=False) == (RANDOM_BODY if freezes else None)
    assert plan.body_note(body_loaded=True) is None
