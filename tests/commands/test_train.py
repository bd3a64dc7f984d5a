"""`kta train` end to end: the run folder it writes, strategy and task options reaching the run,
mistakes as one clear line."""

from __future__ import annotations

import json

import pytest
import torch

from kta_cli.engine.checkpoint import load_checkpoint
from tests.settings import TINY

TARGET = [*TINY, "data.classes=[5,6,7,8,9]", "data.train_per_class=10"]


def one_line_error(result) -> str:
    assert result.code == 2, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err, result.err
    return lines[0]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["strategy=partial", "strategy.trainable_from=layr3"], "did you mean 'layer3'"),
        (["strategy=partial"], "exactly one of strategy.trainable_from"),
        (["strategy=partial", "strategy.frozen_stages=9"], "stages: conv1+bn1, layer1.0"),
        (["strategy=discriminative", "strategy.layer_decay=1.5"], "layer_decay must be in (0, 1]"),
        (["strategy=discriminative", "strategy.layer_decay=0"], "layer_decay must be in (0, 1]"),
        (["strategy=freeze", "strategy.head_lr_mult=0"], "leaves nothing trainable"),
        (["strategy=linear_probe", "strategy.head=mlp"], "use strategy=freeze"),
        (["strategy=lp_ft", "strategy.probe_epochs=1"], "leaves no fine-tuning epoch"),
        (["strategy=freezee"], "did you mean 'freeze'"),
        (["task=multitask", "task.tasks=[digit,parrity]"], "did you mean 'parity'"),
        (["task=multitask", "task.weights={digit: -1}"], "task.weights.digit must be >= 0"),
    ],
)
def test_bad_strategy_options_are_one_line(kta, overrides, expected) -> None:
    assert expected in one_line_error(kta("train", *TINY, *overrides))


def test_source_of_another_architecture_names_both(kta, source_ckpt) -> None:
    result = kta("train", *TINY, "model=test_vit", f"model.checkpoint={source_ckpt}")
    line = one_line_error(result)
    assert "test_resnet" in line and "test_vit" in line


def test_cached_linear_probe_matches_the_uncached_one(kta, source_ckpt) -> None:
    args = [*TARGET, "trainer.epochs=2", f"model.checkpoint={source_ckpt}", "strategy=linear_probe"]
    plain = kta("train", *args)
    cached = kta("train", *args, "strategy.cache_features=true")
    assert plain.code == 0 and cached.code == 0, plain.err + cached.err
    assert "cached features" not in plain.out
    for key in ("train_loss", "val_acc", "test_acc"):
        assert cached.metrics()[key] == pytest.approx(plain.metrics()[key], abs=1e-5)
    saved = load_checkpoint(cached.run_dir() / "best.ckpt")["model"]
    source = load_checkpoint(source_ckpt)["model"]
    body = [k for k in source if not k.startswith("fc.")]
    assert all(torch.equal(saved[k], source[k]) for k in body)


def test_mlp_head_run_reports_groups_and_reloads(kta, source_ckpt) -> None:
    result = kta(
        "train",
        *TARGET,
        f"model.checkpoint={source_ckpt}",
        "strategy=freeze",
        "strategy.head=mlp",
        "strategy.head_hidden=8",
        "strategy.head_lr_mult=2",
        "optim.lr=0.01",
    )
    assert result.code == 0, result.err
    metrics = result.metrics()
    assert metrics["lr_group0_head"] == pytest.approx(0.02)
    assert metrics["trainable_parameters"] == 96 * 8 + 8 + 8 * 5 + 5
    assert "lr_group0_head" in result.out  # the summary table
    assert "body" not in metrics  # a transferred body needs no warning
    evaluated = kta("eval", "ckpt=latest", "logger=none")  # rebuilt with its mlp head
    assert evaluated.code == 0, evaluated.err


def test_multitask_reports_each_task(kta) -> None:
    result = kta(
        "train", *TINY, "task=multitask", "task.weights={parity: 0.5}", "data.train_per_class=10"
    )
    assert result.code == 0, result.err
    metrics = result.metrics()
    for task in ("digit", "parity"):
        for split in ("train", "val", "test"):
            assert 0.0 <= metrics[f"{split}_acc_{task}"] <= 1.0
    assert metrics["test_acc"] == pytest.approx(
        (metrics["test_acc_digit"] + metrics["test_acc_parity"]) / 2, abs=1e-6
    )
    assert "train_acc_parity" in result.out  # the per-epoch log line
    ckpt = load_checkpoint(result.run_dir() / "best.ckpt")
    assert ckpt["model_args"]["num_classes"] == 12  # 10 digits + even/odd heads


def test_multitask_uncertainty_weights_are_learned(kta) -> None:
    result = kta(
        "train",
        *TINY,
        "data=shapes",
        "data.per_class=20",
        "task=multitask",
        "task.weighting=uncertainty",
    )
    assert result.code == 0, result.err
    metrics = result.metrics()
    assert "lr_group2_loss_weights" in metrics
    assert metrics["test_weight_shape"] != pytest.approx(1.0)  # exp(-s), s moved from 0


def test_a_frozen_random_body_is_said_in_the_log_and_the_table(kta) -> None:
    result = kta("train", *TARGET, "strategy=freeze")
    assert result.code == 0, result.err
    assert result.metrics()["body"].startswith("random initialisation, nothing transferred")
    assert "nothing transferred" in result.out  # the summary table
    assert "use model.checkpoint=... or model.pretrained=true" in result.out + result.err


def test_train_writes_a_run_folder_that_eval_reproduces(kta, tiny_ckpt) -> None:
    # tiny_ckpt is `kta train` with TINY, run once per session through the real CLI
    run_dir = tiny_ckpt.parent
    assert (run_dir / "last.ckpt").is_file()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs_run"] == 1
    evaluated = kta("eval", f"ckpt={run_dir}", "logger=none")
    assert evaluated.code == 0, evaluated.err
    assert evaluated.metrics("eval")["acc"] == pytest.approx(metrics["test_acc"], abs=1e-6)
    assert (evaluated.run_dir("eval") / "confusion_matrix.png").is_file()
