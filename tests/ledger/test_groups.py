"""Runs that differ only in seed fold into one row; mean and sample std checked by hand."""

from __future__ import annotations

import math

import pytest

from kta_cli.errors import KtaError
from kta_cli.ledger.groups import (
    chosen_metrics,
    group_runs,
    short_labels,
    shown,
    split_excluded,
)
from kta_cli.ledger.runs import read_runs
from tests.ledger.folders import seed_study


def test_seed_groups_mean_and_sample_std_by_hand(tmp_path):
    outputs = seed_study(tmp_path)
    runs, excluded = split_excluded(read_runs([str(outputs)]))
    assert sorted(r.path.name for r in excluded) == ["b2", "b3"]  # pruned, failed: not averaged
    groups = group_runs(runs, ["test_acc"])
    labels = [g.label for g in groups]
    # sorted by mean test_acc, best first:
    # freeze  (0.80 + 0.90) / 2 = 0.85; deviations +-0.05: (0.0025 + 0.0025) / (2 - 1) = 0.005,
    #         std = sqrt(0.005) = 0.070711
    # full    (0.70 + 0.74 + 0.78) / 3 = 0.74; deviations -0.04, 0, 0.04:
    #         (0.0016 + 0 + 0.0016) / (3 - 1) = 0.0016, std = 0.04
    # distill (another command, same overrides as full): 0.60, one run, no std
    # scratch 0.50, one run
    assert labels == [
        "train model=resnet18 strategy=freeze",
        "train model=resnet18 strategy=full",
        "distill model=resnet18 strategy=full",
        "train model=resnet18 strategy=scratch",
    ]
    freeze, full, distill, scratch = (g.summaries["test_acc"] for g in groups)
    assert (freeze.n, full.n, distill.n, scratch.n) == (2, 3, 1, 1)
    assert freeze.mean == pytest.approx(0.85) and freeze.std == pytest.approx(math.sqrt(0.005))
    assert full.mean == pytest.approx(0.74) and full.std == pytest.approx(0.04)
    assert scratch.std is None and shown(scratch, 1) == "0.5000"
    assert shown(full, 3) == "0.7400 ± 0.0400"
    assert groups[1].seeds == ["seed=0", "data.seed=1,seed=1", "seed=0"]  # a2: the default seed


def test_the_table_shows_only_the_settings_that_differ(tmp_path):
    runs, _ = split_excluded(read_runs([str(seed_study(tmp_path))]))
    shared, labels = short_labels(group_runs(runs, ["test_acc"]))
    assert shared == ["model=resnet18"]  # every group ran with it: said once, above the table
    assert labels == ["train strategy=freeze", "train strategy=full", "distill strategy=full",
                      "train strategy=scratch"]  # fmt: skip


def test_ascending_order_and_a_metric_some_runs_lack(tmp_path):
    runs, _ = split_excluded(read_runs([str(seed_study(tmp_path) / "train")]))
    groups = group_runs(runs, ["test_acc", "val_acc"], descending=False)
    assert groups[0].label.endswith("strategy=scratch")
    full = next(g for g in groups if g.label.endswith("strategy=full"))
    # val_acc only in a0 (0.6) and a2 (0.8): mean 0.7, std sqrt((0.01 + 0.01) / 1) = 0.141421
    assert shown(full.summaries["val_acc"], 3) == "0.7000 ± 0.1414 (n=2)"


def test_default_metrics_follow_the_command_and_unknown_ones_get_did_you_mean(tmp_path):
    runs, _ = split_excluded(read_runs([str(seed_study(tmp_path))]))
    assert chosen_metrics(runs, None) == ["test_acc", "gap_closure"]  # train's, then distill's
    with pytest.raises(KtaError, match="unknown metric 'test_ac'; did you mean 'test_acc'"):
        chosen_metrics(runs, ["test_ac"])
