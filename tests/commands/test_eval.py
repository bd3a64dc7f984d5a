"""`kta eval`: the checkpoint's own data by default, another data set on request."""

import json

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
