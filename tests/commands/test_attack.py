"""`kta attack` end to end on a tiny trained checkpoint: outputs, eps 0 == clean, bad input."""

import json
import os
from pathlib import Path

import pytest
import torch

from kta_cli.cli import main
from kta_cli.data.datasets import build_data, spec_from_dict
from kta_cli.engine.checkpoint import load_checkpoint, save_checkpoint
from kta_cli.engine.evaluate import predict
from kta_cli.loading import model_from_checkpoint
from tests.conftest import TINY

FAST = [
    "images=48",
    "batch_size=24",
    "examples=2",
    "logger=none",
    "attack.steps=2",
    "attack.eps=[0,8/255]",
    "attack.l2_eps=[0,0.5]",
    "noise.std=[0,0.2]",
]


def _train(folder: Path, *extra: str) -> Path:
    previous = os.getcwd()
    os.chdir(folder)
    try:
        main(["train", *TINY, *extra])
    finally:
        os.chdir(previous)
    return (folder / "outputs" / "train" / "latest").resolve()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train(tmp_path_factory.mktemp("attack_train")) / "best.ckpt"


def test_attack_writes_curves_examples_and_metrics(kta, trained):
    result = kta(
        "attack", f"ckpt={trained}", f"compare={trained}", "attack.methods=[fgsm,pgd,pgd_l2]", *FAST
    )
    assert result.code == 0, result.err
    run_dir = result.run_dir("attack")
    for name in ("accuracy_vs_eps.png", "accuracy_vs_noise.png", "examples.png"):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["images"] == 48
    assert metrics["fgsm_acc@0"] == metrics["pgd_acc@0"] == metrics["clean_acc"]
    assert metrics["noise_acc@0"] == metrics["clean_acc"]
    assert metrics["pgd_acc@8/255"] <= metrics["clean_acc"]
    assert [m["label"] for m in metrics["models"]] == ["test_resnet", "test_resnet #2"]
    assert metrics["models"][1]["attacks"] == metrics["models"][0]["attacks"]  # same seeds
    assert "white-box" in result.out and "L2 eps" in result.out


def test_clean_accuracy_matches_scoring_the_normalised_split(kta, trained):
    """The [0, 1] round trip (undo normalisation, model normalises again) changes nothing."""
    result = kta("attack", f"ckpt={trained}", *FAST, "attack.methods=[fgsm]", "examples=0")
    assert result.code == 0, result.err
    checkpoint = load_checkpoint(trained)
    data = build_data(spec_from_dict(checkpoint["config"]["data"]))
    model = model_from_checkpoint(checkpoint)
    images, labels = next(iter(data.test))
    predicted, true, _ = predict(model, [(images[:48], labels[:48])], torch.device("cpu"))
    expected = (predicted == true).float().mean().item()
    assert result.metrics("attack")["clean_acc"] == pytest.approx(expected)


def test_targeted_attack_reports_target_hits(kta, trained):
    result = kta("attack", f"ckpt={trained}", *FAST, "attack.methods=[pgd]", "attack.target=3")
    assert result.code == 0, result.err
    metrics = result.metrics("attack")
    assert metrics["target"] == "3" and 0 <= metrics["pgd_target_hit@8/255"] <= 1


@pytest.mark.parametrize(
    "override,message",
    [
        ("attack.eps=[0,-1/255]", "attack.eps[1] must be >= 0"),
        ("attack.steps=0", "attack.steps must be >= 1"),
        ("attack.target=cat", "attack.target='cat' is not a class"),
        ("attack.methods=[cw]", "attack.methods[0] must be one of"),
    ],
)
def test_bad_input_is_one_line_exit_2(kta, trained, override, message):
    result = kta("attack", f"ckpt={trained}", *FAST, override)
    assert result.code == 2
    assert message in result.err and len(result.err.strip().splitlines()) == 1


def test_compare_with_another_class_count_is_refused(kta, trained, tmp_path_factory):
    folder = tmp_path_factory.mktemp("three_classes")
    other = _train(folder, "data.classes=[0,1,2]", "trainer.max_steps=1")
    result = kta("attack", f"ckpt={trained}", f"compare={other}", *FAST)
    assert result.code == 2
    assert "has 3 classes" in result.err and "has 10" in result.err


QUANTIZE_FAST = [
    "data=digits",
    "data.img_size=16",
    "data.train_per_class=5",
    "quant.calib_batches=2",
    "quant.compile=false",
    "quant.sensitivity=false",
    "measure.latency=false",
    "logger=none",
]


def test_int8_program_is_attacked_by_transfer_from_its_float_parent(kta, trained, tmp_path):
    quantized = kta("quantize", f"ckpt={trained}", *QUANTIZE_FAST)
    assert quantized.code == 0, quantized.err
    int8 = quantized.run_dir("quantize") / "model.ckpt"
    result = kta("attack", f"ckpt={int8}", *FAST, "attack.methods=[fgsm]", "noise.std=[0]")
    assert result.code == 0, result.err
    scored = result.metrics("attack")["models"][0]
    assert scored["label"] == "test_resnet (int8)" and scored["mode"] == "transfer"
    assert Path(scored["transfer_from"]).resolve() == trained.resolve()
    assert "transfer" in result.out

    orphan = load_checkpoint(int8)  # the same program with its parent forgotten
    orphan["parent"] = None
    save_checkpoint(tmp_path / "orphan.ckpt", orphan)
    refused = kta("attack", f"ckpt={tmp_path / 'orphan.ckpt'}", *FAST)
    assert refused.code == 2 and "no float parent" in refused.err
