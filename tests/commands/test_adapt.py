"""`kta adapt` on a tiny shapes checkpoint, `kta train task=dann` with exact resume, refusals."""

import os
from pathlib import Path

import pytest
import timm
import torch

from kta_cli.cli import main
from kta_cli.engine.checkpoint import load_checkpoint, save_checkpoint
from tests.conftest import TINY

SHAPES = ["data=shapes", "data.per_class=20", "data.batch_size=16"]


@pytest.fixture(scope="session")
def shapes_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """timm test_resnet on 16x16 flat shapes, one epoch."""
    folder = tmp_path_factory.mktemp("adapt_source")
    previous = Path.cwd()
    os.chdir(folder)
    try:
        main(["train", *TINY, *SHAPES])
    finally:
        os.chdir(previous)
    return (folder / "outputs" / "train" / "latest" / "best.ckpt").resolve()


def test_adabn_on_one_target_writes_a_checkpoint_whose_parent_is_the_source(kta, shapes_ckpt):
    result = kta("adapt", f"ckpt={shapes_ckpt}", "method=adabn", "data.test_style=texture",
                 "logger=none")  # fmt: skip
    assert result.code == 0, result.err
    metrics = result.metrics("adapt")
    scores = metrics["targets"]["texture"]
    assert scores["images"] == 24 and 0 <= scores["source_acc"] <= 1  # 20% of 120 images
    assert scores["gain"] == pytest.approx(scores["adapted_acc"] - scores["source_acc"])
    adapted = load_checkpoint(result.run_dir("adapt") / "best.ckpt")
    source = load_checkpoint(shapes_ckpt)
    assert adapted["parent"] == str(shapes_ckpt) and adapted["command"] == "adapt"
    assert adapted["model_args"] == source["model_args"]
    moved = {k for k in source["model"] if not torch.equal(source["model"][k], adapted["model"][k])}
    assert moved and all("running_" in k or "num_batches" in k for k in moved)
    assert "source-only" in result.out and "texture" in result.out
    scored = kta("eval", f"ckpt={result.run_dir('adapt')}", "logger=none")  # a normal checkpoint
    assert scored.code == 0, scored.err


def test_tent_on_several_targets_online_on_the_test_stream(kta, shapes_ckpt):
    result = kta("adapt", f"ckpt={shapes_ckpt}", "method=tent", "adapt.targets=[noise,clutter]",
                 "adapt.split=test", "adapt.batch_size=8", "logger=none")  # fmt: skip
    assert result.code == 0, result.err
    metrics = result.metrics("adapt")
    assert set(metrics["targets"]) == {"noise", "clutter"} and len(metrics["checkpoints"]) == 2
    for scores in metrics["targets"].values():
        assert 0 <= scores["online_acc"] <= 1 and scores["images"] == 24
    names = sorted(p.name for p in result.run_dir("adapt").glob("adapted_*.ckpt"))
    assert names == ["adapted_clutter.ckpt", "adapted_noise.ckpt"]


def test_a_vit_checkpoint_an_unknown_method_and_style_are_refused_in_one_line(
    kta, tmp_path, shapes_ckpt
):
    vit = timm.create_model("test_vit", num_classes=6, img_size=16)
    path = save_checkpoint(tmp_path / "vit.ckpt", {
        "model": vit.state_dict(), "model_args": {"name": "test_vit", "num_classes": 6,
        "img_size": 16}, "data": {"name": "shapes", "img_size": 16, "mean": [0.5] * 3,
        "std": [0.5] * 3, "in_chans": 3}, "class_names": list("abcdef"),
        "config": {"data": {"name": "shapes", "img_size": 16}},
    })  # fmt: skip
    refused = kta("adapt", f"ckpt={path}", "method=tent", "data.test_style=noise")
    assert refused.code == 2 and "no BatchNorm layers, so method=tent does not apply" in refused.err
    assert "task=dann" in refused.err and len(refused.err.strip().splitlines()) == 1
    unknown = kta("adapt", f"ckpt={path}", "method=tnet")
    assert unknown.code == 2 and "did you mean 'tent'" in unknown.err
    style = kta("adapt", f"ckpt={shapes_ckpt}", "adapt.targets=[noise,textur]")
    assert style.code == 2 and "did you mean 'texture'" in style.err


DANN = [*TINY, *SHAPES, "data.per_class=10", "task=dann", "data.target_style=noise",
        "trainer.epochs=2"]  # fmt: skip


def test_dann_logs_source_target_and_domain_accuracy_and_resumes_exactly(kta):
    whole = kta("train", *DANN)
    assert whole.code == 0, whole.err
    metrics = whole.metrics()
    for key in ("train_acc", "val_acc", "val_target_acc", "val_domain_acc", "test_target_acc"):
        assert 0 <= metrics[key] <= 1, key
    assert metrics["val_lambda"] == pytest.approx(0.999909, abs=1e-5)  # p = 1 at the end
    whole_weights = load_checkpoint(whole.run_dir() / "last.ckpt")
    stopped = kta("train", *DANN, "trainer.max_steps=2")
    assert stopped.code == 0, stopped.err
    resumed = kta("train", *DANN, f"trainer.resume={stopped.run_dir()}")
    assert resumed.code == 0, resumed.err
    again = load_checkpoint(resumed.run_dir() / "last.ckpt")
    for key, value in whole_weights["model"].items():
        assert torch.equal(value, again["model"][key]), key
    domain = {k: v for k, v in whole_weights["train_state"]["task"].items()}
    assert domain["steps_done"] == 6 and all(
        torch.equal(v, again["train_state"]["task"][k]) for k, v in domain.items()
    )
    assert resumed.metrics()["val_target_acc"] == metrics["val_target_acc"]


def test_dann_without_a_target_style_is_refused(kta):
    refused = kta("train", *TINY, *SHAPES, "task=dann")
    assert refused.code == 2 and "data.target_style=<style>" in refused.err
