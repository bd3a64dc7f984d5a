"""Schedules and the iterative loop's stopping rule, with hand-computed values and fakes."""

from __future__ import annotations

import pytest
from torch import nn

from kta_cli.compress.prune_schedule import iterative_prune, schedule_ratios, sensitivity
from kta_cli.errors import KtaError


def test_linear_and_cubic_schedules() -> None:
    assert schedule_ratios(0.6, 3) == pytest.approx([0.0, 0.2, 0.4, 0.6])
    # AGP: r * (1 - (1 - i/n)^3) with r = 0.8, n = 2 -> 0.8 * 7/8 = 0.7 after step one
    assert schedule_ratios(0.8, 2, "cubic") == pytest.approx([0.0, 0.7, 0.8])
    with pytest.raises(KtaError, match="did you mean 'cubic'"):
        schedule_ratios(0.5, 2, "cubc")


def run_loop(losses: list[float], max_allowed_loss: float | None):
    """The loop with fakes: step i gives validation loss losses[i - 1]; snapshots are labels."""
    state = {"step": 0}
    tuned: list[int] = []

    def fine_tune(step: int) -> bool:
        tuned.append(step)
        return True

    def prune_step(step: int) -> dict:
        state["step"] = step
        return {"sparsity": step / 10}

    def evaluate() -> dict:
        return {"loss": losses[state["step"] - 1] if state["step"] else 0.0, "acc": 1.0}

    result = iterative_prune(
        nn.Identity(),
        targets=schedule_ratios(0.4, len(losses)),
        prune_step=prune_step,
        fine_tune=fine_tune,
        evaluate=evaluate,
        snapshot=lambda: f"model after step {state['step']}",
        max_allowed_loss=max_allowed_loss,
    )
    return result, tuned


def test_stops_when_loss_exceeds_max_allowed_and_keeps_the_last_good_model() -> None:
    result, tuned = run_loop([0.1, 0.2, 0.5, 0.6], max_allowed_loss=0.3)
    assert result.stopped_early and result.best_step == 2
    assert result.model == "model after step 2"
    assert [r.step for r in result.records] == [1, 2, 3]  # step 4 never ran
    assert [r.meets for r in result.records] == [True, True, False]
    assert tuned == [1, 2, 3]


def test_runs_every_step_without_a_limit_and_keeps_the_input_if_none_meets() -> None:
    result, _ = run_loop([0.1, 0.2, 0.5, 0.6], max_allowed_loss=None)
    assert not result.stopped_early and result.best_step == 4
    result, _ = run_loop([0.9, 0.1], max_allowed_loss=0.5)
    assert result.best_step == 0 and result.model == "model after step 0"


def test_sensitivity_prunes_each_layer_alone_on_copies() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    pruned: list[tuple[str, float]] = []

    def prune_one(copy: nn.Module, name: str, ratio: float) -> None:
        assert copy is not model
        pruned.append((name, ratio))
        copy.ratio = ratio

    table = sensitivity(
        model, ["0", "1"], [0.5, 0.75], prune_one=prune_one,
        evaluate=lambda m: {"acc": 1 - m.ratio},
    )  # fmt: skip
    assert table == {"0": {0.5: 0.5, 0.75: 0.25}, "1": {0.5: 0.5, 0.75: 0.25}}
    assert pruned == [("0", 0.5), ("0", 0.75), ("1", 0.5), ("1", 0.75)]
