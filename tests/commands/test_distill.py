"""`kta distill` through the real CLI: outputs other commands accept, cache, baseline, mistakes."""

import json

import pytest
import torch

from kta_cli.engine.checkpoint import load_checkpoint
from tests.settings import DISTILL_TINY


def test_distill_writes_a_student_checkpoint_that_eval_accepts(kta, tiny_ckpt):
    result = kta("distill", f"teacher={tiny_ckpt}", *DISTILL_TINY, "distill.baseline=true")
    assert result.code == 0, result.err
    run_dir = result.run_dir("distill")
    student = load_checkpoint(run_dir / "best.ckpt")
    assert student["command"] == "distill" and student["parent"] == str(tiny_ckpt)
    assert student["model_args"]["name"] == "test_resnet"
    assert student["config"]["data"]["img_size"] == 16  # the teacher's input size
    metrics = result.metrics("distill")
    for key in ("test_acc", "teacher_test_acc", "scratch_test_acc"):
        assert 0.0 <= metrics[key] <= 1.0
    gap = metrics["teacher_test_acc"] - metrics["scratch_test_acc"]
    assert metrics["teacher_scratch_gap"] == pytest.approx(gap)
    if abs(gap) < 1e-6:
        assert metrics["gap_closure"] is None
    else:
        expected = (metrics["test_acc"] - metrics["scratch_test_acc"]) / gap
        assert metrics["gap_closure"] == pytest.approx(expected)
    assert (run_dir / "baseline.ckpt").is_file()
    evaluated = kta("eval", f"ckpt={run_dir}", "logger=none")
    assert evaluated.code == 0, evaluated.err
    assert evaluated.metrics("eval")["acc"] == pytest.approx(metrics["test_acc"])


def test_every_loss_part_and_schedule_reaches_tensorboard(kta, tiny_ckpt):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    overrides = [o for o in DISTILL_TINY if o != "logger=none"]
    result = kta(
        "distill",
        f"teacher={tiny_ckpt}",
        *overrides,
        "distill=[hinton,hints]",
        "distill.temperature=8",
        "distill.temperature_end=2",
        "distill.temperature_schedule=linear",
        "trainer.log_every=1",
    )
    assert result.code == 0, result.err
    events = EventAccumulator(str(result.run_dir("distill"))).Reload()
    tags = set(events.Tags()["scalars"])
    for part in ("loss", "ce", "kd", "feature", "temperature", "alpha"):
        assert f"train/{part}" in tags and f"step/{part}" in tags, part
    temperatures = [e.value for e in events.Scalars("step/temperature")]
    assert temperatures[0] > temperatures[-1] >= 2.0  # decays from 8 towards 2


def test_teacher_cache_is_reused_by_the_next_student(kta, tiny_ckpt, tmp_path):
    cache = f"distill.cache_dir={tmp_path / 'cache'}"
    first = kta("distill", f"teacher={tiny_ckpt}", *DISTILL_TINY, cache, "distill.cache=true")
    assert first.code == 0, first.err
    assert first.metrics("distill")["teacher_cache"].startswith("cached per example (computed")
    second = kta("distill", f"teacher={tiny_ckpt}", *DISTILL_TINY, cache, "student=test_vit")
    assert second.code == 0, second.err
    assert second.metrics("distill")["teacher_cache"].startswith("cached per example (loaded")


def test_dark_knowledge_reports_the_class_left_out(kta, tiny_ckpt):
    result = kta(
        "distill",
        f"teacher={tiny_ckpt}",
        *DISTILL_TINY,
        "distill.omit_class=3",
        "distill.cache=false",
    )
    assert result.code == 0, result.err
    metrics = result.metrics("distill")
    assert metrics["teacher_cache"].startswith("teacher runs every step (distill.cache=false)")
    assert metrics["omitted_class"] == "3"
    assert "teacher_omitted_class_test_acc" in metrics
    # the shift is searched on 0, 0.25, ..., 10; raising class 3's logit can only turn more
    # predictions into 3, so its accuracy with the shift is never below the plain one
    assert metrics["omitted_class_bias_shift"] in [0.25 * i for i in range(41)]
    shifted = metrics["omitted_class_test_acc_bias_adjusted"]
    plain = metrics["omitted_class_test_acc"]
    assert shifted >= plain
    if metrics["omitted_class_bias_shift"] == 0:
        assert shifted == plain


def test_teacher_as_model_name_with_plain_weights(kta, tiny_ckpt, tmp_path):
    weights = tmp_path / "teacher_weights.pt"
    torch.save(load_checkpoint(tiny_ckpt)["model"], weights)
    result = kta(
        "distill",
        "teacher=test_resnet",
        f"teacher.checkpoint={weights}",
        *DISTILL_TINY,
        "data.img_size=16",
    )
    assert result.code == 0, result.err
    metrics = json.loads((result.run_dir("distill") / "metrics.json").read_text())
    # the weights were loaded: tiny_ckpt scores ~0.28 on the digits, an untrained teacher ~0.1
    assert metrics["teacher_test_acc"] > 0.18
    assert load_checkpoint(result.run_dir("distill") / "best.ckpt")["parent"] == str(weights)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["data.classes=[0,1,2]"], "predicts 10 classes, the transfer data has 3"),
        (["distill.temperature=0"], "distill.temperature must be > 0"),
        (["distill.temperature_end=-1", "distill.temperature_schedule=linear"], "must be > 0"),
        (["distill.alpha=1.5"], "distill.alpha must be in [0, 1]"),
        (["distill.alpha=-0.1"], "distill.alpha must be in [0, 1]"),
        (["distill.hints=[{student: layer9, teacher: layer4}]"], "act1, layer1, layer2, layer3"),
        (["distill.temperature_schedule=cosin"], "did you mean 'cosine'"),
        (["distill.cache=true", "data.augment={hflip: true}"], "distill.cache=true but"),
        (["distill.omit_class=12"], "distill.omit_class=12 is not a class index"),
        (["distill.kd_weight=0"], "no distillation loss is on"),
    ],
)
def test_bad_input_is_one_clear_line(kta, tiny_ckpt, overrides, message):
    result = kta("distill", f"teacher={tiny_ckpt}", *DISTILL_TINY, *overrides)
    assert result.code == 2
    assert message in result.err
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err


def test_bad_teachers_are_one_clear_line(kta, tmp_path):
    not_a_checkpoint = tmp_path / "notes.ckpt"
    not_a_checkpoint.write_text("not a checkpoint")
    cases = [
        ([], "no teacher: outputs/train/latest does not exist"),
        ([f"teacher={tmp_path / 'missing.ckpt'}"], "checkpoint not found"),
        ([f"teacher={not_a_checkpoint}"], "notes.ckpt"),
        (["teacher=test_resnet", "teacher.checkpoint=null"], "teacher test_resnet needs weights"),
    ]
    for overrides, message in cases:
        result = kta("distill", *DISTILL_TINY, *overrides)
        assert result.code == 2, (overrides, result.err)
        assert message in result.err, result.err
        assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err


def test_an_interrupted_distillation_resumes_where_it_stopped(kta, tiny_ckpt):
    stopped = kta(
        "distill",
        f"teacher={tiny_ckpt}",
        *DISTILL_TINY,
        "distill=hinton_hints",
        "trainer.max_steps=1",
    )
    assert stopped.code == 0, stopped.err
    assert stopped.metrics("distill")["steps"] == 1
    resumed = kta(
        "distill",
        f"teacher={tiny_ckpt}",
        *DISTILL_TINY,
        "distill=hinton_hints",
        "trainer.resume=auto",
    )
    assert resumed.code == 0, resumed.err
    metrics = resumed.metrics("distill")
    assert metrics["steps"] == 2 and metrics["epochs_run"] == 1  # 80 images, batches of 64
