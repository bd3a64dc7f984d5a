"""Schedules with linear warmup, stepped per update; every schedule has the loop's interface."""

import pytest
import torch

from kta_cli.engine.optim import SCHEDULES, build_optimizer, build_scheduler
from kta_cli.errors import KtaError


def optimizer(lr: float = 0.1) -> torch.optim.Optimizer:
    return build_optimizer([torch.nn.Parameter(torch.zeros(2))], name="sgd", lr=lr)


def lr_after(schedule, opt, updates: int) -> float:
    """The learning rate after `updates` more optimizer steps (counted across calls)."""
    done = getattr(schedule, "_test_updates", 0)
    for step in range(done + 1, done + updates + 1):
        schedule.step_update(num_updates=step)
    schedule._test_updates = done + updates
    return opt.param_groups[0]["lr"]


def test_cosine_warms_up_linearly_then_decays_to_min():
    opt = optimizer(0.1)
    schedule = build_scheduler(
        opt,
        name="cosine",
        epochs=10,
        updates_per_epoch=10,
        warmup_epochs=2,
        warmup_lr=0.0,
        min_lr=0.001,
    )
    assert lr_after(schedule, opt, 10) == pytest.approx(0.05, rel=1e-6)  # half-way up the ramp
    assert lr_after(schedule, opt, 10) == pytest.approx(0.1, rel=1e-3)  # end of warmup: peak
    assert lr_after(schedule, opt, 79) == pytest.approx(0.001, abs=1e-4)  # end: min_lr


def test_step_and_onecycle_follow_their_shapes():
    opt = optimizer(0.1)
    step = build_scheduler(
        opt, name="step", epochs=10, updates_per_epoch=5, decay_epochs=3, decay_rate=0.1
    )
    assert lr_after(step, opt, 16) == pytest.approx(0.01)  # 3.2 epochs: one decay
    opt = optimizer(0.1)
    cycle = build_scheduler(opt, name="onecycle", epochs=4, updates_per_epoch=10, warmup_epochs=1)
    first = opt.param_groups[0]["lr"]
    peak = lr_after(cycle, opt, 10)
    final = lr_after(cycle, opt, 29)
    assert first < peak and final < first and peak == pytest.approx(0.1, rel=0.05)


@pytest.mark.parametrize("name", SCHEDULES)
def test_every_schedule_steps_and_round_trips_its_state(name):
    opt = optimizer()
    schedule = build_scheduler(opt, name=name, epochs=3, updates_per_epoch=4)
    lr_after(schedule, opt, 4)
    schedule.step(1, 0.5)
    state = schedule.state_dict()
    # A fresh schedule given that state continues with the same rates as the original.
    fresh_opt = optimizer()
    fresh = build_scheduler(fresh_opt, name=name, epochs=3, updates_per_epoch=4)
    fresh.load_state_dict(state)
    fresh._test_updates = schedule._test_updates
    fresh_opt.param_groups[0]["lr"] = opt.param_groups[0]["lr"]  # the optimizer's own state
    for _ in range(6):
        assert lr_after(fresh, fresh_opt, 1) == pytest.approx(lr_after(schedule, opt, 1)), name


def test_unknown_names_suggest_known_ones():
    with pytest.raises(KtaError, match="did you mean 'cosine'"):
        build_scheduler(optimizer(), name="cosin", epochs=1, updates_per_epoch=1)
    with pytest.raises(KtaError, match="did you mean 'adamw'"):
        build_optimizer([torch.nn.Parameter(torch.zeros(1))], name="adamww", lr=0.1)
