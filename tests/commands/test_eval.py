"""`kta eval`: the checkpoint's own data by default, another data set on request; calibration
and, on cue-conflict shapes, shape bias."""

import json

import pytest

from tests.settings import TINY


def test_eval_reports_per_class_accuracy_and_confusion_matrix(kta, tiny_ckpt):
    result = kta("eval", f"ckpt={tiny_ckpt.parent}", "split=val", "logger=none")
    assert result.code == 0, result.err
    metrics = result.metrics("eval")
    assert metrics["split"] == "val" and set(metrics["per_class_acc"]) == set(map(str, range(10)))
    confusion = metrics["confusion_matrix"]
    assert sum(map(sum, confusion)) == metrics["images"]
    correct = sum(confusion[i][i] for i in range(10))
    assert abs(correct / metrics["images"] - metrics["acc"]) < 1e-6
    assert metrics["parent"] == str(tiny_ckpt)
    assert len(metrics["hardest_classes"]) == 3
    assert (result.run_dir("eval") / "confusion_matrix.png").stat().st_size > 1000
    # calibration: NLL is the mean cross-entropy, the temperature was fitted (on val itself here)
    assert metrics["nll"] == pytest.approx(metrics["loss"], abs=1e-5)
    assert 0 <= metrics["ece"] <= 1 and 0 <= metrics["brier"] <= 2 and metrics["temperature"] > 0
    assert metrics["nll_scaled"] <= metrics["nll"] + 1e-6  # fitted on these very logits
    assert (result.run_dir("eval") / "reliability.png").stat().st_size > 1000
    assert "shape_bias" not in metrics  # digits have no cue conflict


def test_eval_on_another_data_set_checks_the_class_count(kta):
    trained = kta("train", *TINY, "data.classes=[0,1,2,3,4,5]", "trainer.max_steps=3")
    assert trained.code == 0, trained.err
    shapes = kta("eval", "ckpt=latest", "data=shapes", "data.per_class=5", "logger=none")
    assert shapes.code == 0, shapes.err  # six shapes, six classes: runs, at the model's size
    digits = kta("eval", "ckpt=outputs/train/latest", "data=digits", "logger=none")
    assert digits.code == 2 and "6 classes, the data 10" in digits.err


def test_eval_metrics_are_valid_json_without_nan(kta, tiny_ckpt):
    result = kta("eval", f"ckpt={tiny_ckpt.parent / 'last.ckpt'}", "logger=none")
    assert result.code == 0, result.err
    text = (result.run_dir("eval") / "metrics.json").read_text()
    assert "NaN" not in text and json.loads(text)["images"] > 0


def test_eval_refuses_a_multitask_checkpoint_with_one_line(kta):
    trained = kta("train", *TINY, "task=multitask", "trainer.max_steps=2")
    assert trained.code == 0, trained.err
    result = kta("eval", "ckpt=outputs/train/latest", "logger=none")
    assert result.code == 2 and "multi-task model" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_eval_on_cue_conflict_shapes_reports_shape_bias_and_calibration(kta):
    shapes = ["data=shapes", "data.per_class=12", "data.style=class_texture"]
    trained = kta("train", *TINY, *shapes, "trainer.max_steps=4")
    assert trained.code == 0, trained.err
    result = kta("eval", "ckpt=latest", *shapes, "data.test_style=cue_conflict", "eval.bins=10")
    assert result.code == 0, result.err
    metrics = result.metrics("eval")
    assert metrics["cue_conflict_images"] == metrics["images"]  # every test image conflicts
    assert metrics["shape_acc"] == pytest.approx(metrics["acc"])  # the label is the shape
    decided = metrics["shape_decisions"] + metrics["texture_decisions"]
    assert 0 < decided <= metrics["images"]
    assert metrics["shape_bias"] == pytest.approx(metrics["shape_decisions"] / decided)
    for key in ("ece", "nll", "brier", "temperature", "ece_scaled", "nll_scaled", "brier_scaled"):
        assert key in metrics and metrics[key] is not None, key
    assert (result.run_dir("eval") / "reliability.png").stat().st_size > 1000
    assert "shape_bias" in result.out and "ece_scaled" in result.out  # the console table


def test_eval_without_temperature_scaling_and_a_bad_bin_count(kta):
    trained = kta("train", *TINY, "trainer.max_steps=2")
    assert trained.code == 0, trained.err
    plain = kta("eval", "ckpt=latest", "eval.temperature_scaling=false", "logger=none")
    assert plain.code == 0, plain.err
    assert "temperature" not in plain.metrics("eval") and "ece" in plain.metrics("eval")
    bad = kta("eval", "ckpt=latest", "eval.bins=0", "logger=none")
    assert bad.code == 2 and "eval.bins must be > 0" in bad.err
