"""`kta train task=simclr`: a backbone checkpoint other commands take, the kNN monitor, exact
resume, and a data set too small for the batch refused in one line."""

import json

import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from kta_cli.engine.checkpoint import load_checkpoint
from tests.conftest import TINY
from tests.engine.test_resume import _runs, assert_identical, weights

# 40 training images in batches of 16: three steps an epoch (16, 16, 8).
SIMCLR = [*TINY, "task=simclr", "data.train_per_class=4", "data.batch_size=16"]


def test_simclr_checkpoint_feeds_a_linear_probe(kta):
    pretrained = kta(
        "train", *SIMCLR, "task.linear_eval=true", "task.knn_k=5", "logger=tensorboard"
    )
    assert pretrained.code == 0, pretrained.err
    events = EventAccumulator(str(pretrained.run_dir()))
    events.Reload()
    for tag in ("val/knn_acc", "train/loss", "train/contrast_acc", "train/positive_cos"):
        assert tag in events.Tags()["scalars"], tag
    metrics = pretrained.metrics()
    assert metrics["steps"] == 3
    assert 0.0 <= metrics["val_knn_acc"] <= 1.0 and "test_knn_acc" in metrics
    assert metrics["best_val_knn_acc"] == metrics["val_knn_acc"]  # the default monitor
    assert 0.0 <= metrics["linear_eval_acc"] <= 1.0
    assert metrics["train_loss"] > 0
    best = load_checkpoint(pretrained.run_dir() / "best.ckpt")
    assert best["model_args"]["name"] == "test_resnet"
    assert not any(key.startswith("projector") for key in best["model"])  # the backbone only
    last = load_checkpoint(pretrained.run_dir() / "last.ckpt")
    assert any(key.startswith("projector") for key in last["train_state"]["task"])

    probe = kta(
        "train",
        *TINY,
        "strategy=linear_probe",
        f"model.checkpoint={pretrained.run_dir() / 'best.ckpt'}",
        "data.train_per_class=4",
    )
    assert probe.code == 0, probe.err
    probed = probe.metrics()
    assert "val_acc" in probed and probed["trainable_parameters"] < metrics["parameters"]
    child = load_checkpoint(probe.run_dir() / "best.ckpt")
    assert child["parent"].endswith("best.ckpt")
    # The probe started from the SimCLR body: its frozen weights are the pretrained ones.
    body = "layer1.0.conv1.weight"
    assert torch.equal(child["model"][body], best["model"][body])


def test_max_steps_then_resume_matches_an_uninterrupted_run(kta):
    run = [*SIMCLR, "trainer.epochs=2"]
    reference = kta("train", *run)
    assert reference.code == 0, reference.err
    stopped = kta("train", *run, "trainer.max_steps=4")  # one step into the second epoch
    assert stopped.code == 0, stopped.err
    resumed = kta("train", *run, "trainer.resume=auto")
    assert resumed.code == 0, resumed.err
    assert_identical(weights(_runs(reference)[0]), weights(resumed.run_dir()))
    first = json.loads((_runs(reference)[0] / "metrics.json").read_text())
    assert resumed.metrics()["val_knn_acc"] == first["val_knn_acc"]


def test_data_too_small_for_the_batch_is_one_line(kta):
    result = kta("train", *SIMCLR, "data.batch_size=64")
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "data.batch_size=64" in lines[0] and "40 images" in lines[0]


def test_bad_simclr_options_are_one_line(kta):
    for option, expected in [
        ("task.temperature=0", "task.temperature must be > 0"),
        ("task.crop_scale=[0.9,0.1]", "task.crop_scale must be [low, high]"),
        ("task.blur_p=1.5", "task.blur_p must be in [0, 1]"),
    ]:
        result = kta("train", *SIMCLR, option)
        assert result.code == 2, option
        assert len(result.err.strip().splitlines()) == 1 and expected in result.err, result.err
