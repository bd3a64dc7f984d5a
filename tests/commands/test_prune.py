"""`kta prune` end to end on a tiny trained model: what a user runs and what they get back."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kta_cli.engine.checkpoint import load_checkpoint
from kta_cli.loading import model_from_checkpoint
from kta_cli.overrides import config_dir
from tests.settings import PRUNE_FAST as FAST

IMPORTANCE = sorted(p.stem for p in (config_dir() / "importance").glob("*.yaml"))


def prune(kta, ckpt: Path, *args: str):
    result = kta("prune", f"ckpt={ckpt}", *FAST, *args)
    assert result.code == 0, result.err
    return result, result.metrics("prune")


def test_structured_pruning_shrinks_the_model_and_eval_reads_it(kta, tiny_ckpt) -> None:
    result, metrics = prune(
        kta, tiny_ckpt, "prune.ratio=0.5", "prune.steps=2", "finetune.epochs=1",
        "measure.latency=true", "measure.rounds=1", "logger=tensorboard",
    )  # fmt: skip
    run_dir = result.run_dir("prune")
    assert metrics["params_after"] < 0.6 * metrics["params_before"]
    assert metrics["macs_ratio"] < 0.6 and metrics["latency_ms_after"] > 0
    assert metrics["latency_layout"] == "channels_last"  # timed as a CPU deployment runs it
    assert [s["step"] for s in metrics["steps"]] == [1, 2] and metrics["kept_step"] == 2
    assert (run_dir / "accuracy_vs_sparsity.png").is_file()
    assert list(run_dir.glob("events.out.tfevents.*"))
    checkpoint = load_checkpoint(run_dir / "model.ckpt")
    assert checkpoint["model_kind"] == "pruned" and checkpoint["parent"] == str(tiny_ckpt)
    model = model_from_checkpoint(checkpoint)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert (
        conv.weight.is_contiguous()
    )  # the timing used copies: the saved weights kept their layout
    assert sum(p.numel() for p in model.parameters()) == metrics["params_after"]
    for name, (before, after) in metrics["layers"].items():
        assert model.get_submodule(name).out_channels == after <= before
    evaluated = kta("eval", "ckpt=outputs/prune/latest", "logger=none")
    assert evaluated.code == 0, evaluated.err
    assert evaluated.metrics("eval")["acc"] == pytest.approx(metrics["test_acc_after_finetune"])


def test_unstructured_pruning_reaches_the_exact_sparsity(kta, tiny_ckpt) -> None:
    result, metrics = prune(
        kta, tiny_ckpt, "prune.method=unstructured", "prune.ratio=0.7",
        "finetune.epochs=1",
    )  # fmt: skip
    model = model_from_checkpoint(load_checkpoint(result.run_dir("prune") / "model.ckpt"))
    weights = [model.get_submodule(n).weight for n in metrics["layers"]]
    assert "fc" not in metrics["layers"]  # the head is left alone by default
    total = sum(w.numel() for w in weights)
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert zeros == round(0.7 * total)  # exact, and still so after fine-tuning
    assert metrics["sparsity"] == pytest.approx(zeros / total)
    assert metrics["params_after"] == metrics["params_before"]
    assert metrics["nonzero_params_after"] < 0.4 * metrics["params_before"]


def test_iterative_loop_stops_on_max_allowed_loss(kta, tiny_ckpt) -> None:
    _, metrics = prune(
        kta, tiny_ckpt, "prune.steps=3", "prune.ratio=0.6", "prune.max_allowed_loss=1e-6"
    )
    assert metrics["stopped_on_max_loss"] and metrics["steps_run"] == 1
    assert metrics["kept_step"] == 0 and metrics["params_after"] == metrics["params_before"]
    _, metrics = prune(
        kta, tiny_ckpt, "prune.steps=3", "prune.ratio=0.6", "prune.max_allowed_loss=100",
        "prune.schedule=cubic",
    )  # fmt: skip
    assert not metrics["stopped_on_max_loss"] and metrics["kept_step"] == 3
    targets = [s["target"] for s in metrics["steps"]]
    assert targets == pytest.approx([0.6 * (1 - (1 - i / 3) ** 3) for i in (1, 2, 3)])


def test_sensitivity_table_and_plot(kta, tiny_ckpt) -> None:
    result, metrics = prune(
        kta, tiny_ckpt, "prune.sensitivity=true", "prune.sensitivity_ratios=[0.5]",
        "prune.ignore=[conv1,layer3,layer4]",
    )  # fmt: skip
    assert (result.run_dir("prune") / "sensitivity.png").is_file()
    layers = metrics["sensitivity"]
    assert set(layers) == set(metrics["layers"]) and "layer1.0.conv1" in layers
    assert not any(name.startswith(("conv1", "layer3", "layer4", "fc")) for name in layers)
    assert all(0.0 <= row["0.5"] <= 1.0 for row in layers.values())
    assert "sensitivity" in result.out


@pytest.mark.parametrize("importance", IMPORTANCE)
def test_every_importance_criterion_prunes(kta, tiny_ckpt, importance: str) -> None:
    _, metrics = prune(
        kta, tiny_ckpt, f"importance={importance}", "prune.ratio=0.3",
        "prune.scope=layer", "prune.layer_ratios={layer4.0.conv1: 0.5}",
    )  # fmt: skip
    assert metrics["importance"] == importance and metrics["params_ratio"] < 0.9
    assert metrics["layers"]["layer4.0.conv1"][1] == metrics["layers"]["layer4.0.conv1"][0] // 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["prune.ratio=1.0"], "prune.ratio must be in [0, 1)"),
        (["prune.ratio=-0.1"], "prune.ratio must be in [0, 1)"),
        (["prune.method=structure"], "did you mean 'structured'"),
        (["importance=tylor"], "did you mean 'taylor'"),
        (["ckpt=missing.ckpt"], "checkpoint not found: missing.ckpt"),
        (["prune.layer_ratios={fc: 0.5}"], "'fc' cannot be pruned: it is the classifier head"),
        (["prune.ignore=[layer9]"], "unknown layer in prune.ignore 'layer9'"),
        (["prune.layer_ratios={layer1.0.bn1: 0.5}"], "layer 'layer1.0.bn1' in prune.layer_ratios"),
        (["prune.layer_ratios={layer1: 1.5}"], "prune.layer_ratios.layer1 must be"),
        (["prune.method=unstructured", "importance=bn_scale"], "ranks whole channels"),
        (["prune.ignore=[layer1,layer2,layer3,layer4,conv1]"], "leaves no conv or linear layer"),
        (["prune.round_to=sixteen"], "prune.round_to must be auto, null or an integer > 0"),
    ],
)
def test_bad_input_is_one_line_with_exit_code_2(
    kta, tiny_ckpt, args: list[str], message: str
) -> None:
    ckpt = [] if any(a.startswith("ckpt=") for a in args) else [f"ckpt={tiny_ckpt}"]
    result = kta("prune", *ckpt, *FAST, *args)
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err
    assert message in lines[0]


def test_pruned_then_quantized(kta, tiny_ckpt) -> None:
    pytest.importorskip("kta_cli.commands.quantize")
    _, pruned = prune(kta, tiny_ckpt, "prune.ratio=0.5")
    result = kta(
        "quantize", "ckpt=outputs/prune/latest", "logger=none", "quant.compile=false",
        "quant.sensitivity=false", "quant.calib_batches=2", "measure.rounds=1",
        "measure.repeats=1", "measure.batch_size=2",
    )  # fmt: skip
    assert result.code == 0, result.err
    metrics = result.metrics("quantize")
    assert metrics["checkpoint"].endswith("model.ckpt") and "/prune/" in metrics["checkpoint"]
    assert metrics["float_parameter_bytes"] == pruned["weights_bytes_after"]
    assert metrics["reload_agreement"] == 1.0
    assert (result.run_dir("quantize") / "model.ckpt").is_file()


def test_both_models_can_be_timed_in_onnxruntime_as_kta_export_deploys_them(kta, tiny_ckpt):
    result, metrics = prune(
        kta, tiny_ckpt, "prune.ratio=0.5", "measure.latency=true", "measure.rounds=1",
        "measure.onnxruntime=true",
    )  # fmt: skip
    assert (
        metrics["latency_ms_after_onnxruntime"] > 0 and metrics["latency_ms_before_onnxruntime"] > 0
    )
    ratio = metrics["latency_ms_after_onnxruntime"] / metrics["latency_ms_before_onnxruntime"]
    assert metrics["latency_ratio_onnxruntime"] == pytest.approx(ratio)
    assert "latency_ratio_onnxruntime" in result.out  # the console table
    assert not list(result.cwd.rglob("*.onnx"))  # the ONNX files were only for timing


def test_a_model_onnx_cannot_take_is_n_a_and_the_pruned_model_is_kept(kta, tiny_ckpt, monkeypatch):
    from kta_cli.errors import KtaError
    from kta_cli.export import latency

    def refuse(*args, **kwargs):
        raise KtaError("torch could not export the input model to ONNX (a reason)")

    monkeypatch.setattr(latency, "onnxruntime_runners", refuse)
    result, metrics = prune(
        kta, tiny_ckpt, "prune.ratio=0.5", "measure.latency=true", "measure.rounds=1",
        "measure.onnxruntime=true",
    )  # fmt: skip
    assert metrics["latency_onnxruntime"].startswith("n/a: torch could not export the input")
    assert metrics["latency_ratio"] > 0 and (result.run_dir("prune") / "model.ckpt").is_file()
