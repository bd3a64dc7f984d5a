"""`kta quantize` end to end on a tiny model: it shrinks, keeps its predictions, reloads as data;
every user mistake is one line on stderr and exit code 2."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kta_cli.engine.checkpoint import load_checkpoint
from tests.settings import QUANT_FAST


def metrics_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_static_int8_is_smaller_and_keeps_accuracy(quant_static_run: Path):
    metrics = metrics_of(quant_static_run)
    assert metrics["backend"] == "pt2e_x86" and metrics["mode"] == "static"
    assert metrics["int8_parameter_bytes"] < 0.3 * metrics["float_parameter_bytes"]
    assert metrics["int8_file_bytes"] < 0.7 * metrics["float_file_bytes"]
    assert abs(metrics["acc_before"] - metrics["acc_after"]) < 0.05
    assert metrics["reload_agreement"] >= 0.9


def test_per_layer_sqnr_names_the_model_layers(quant_static_run: Path):
    rows = metrics_of(quant_static_run)["layer_sqnr"]
    layers = [row["layer"] for row in rows]
    assert layers[0] == "conv1.0" and "fc" in layers
    assert all(10 < row["sqnr_db"] < 60 and row["drop_db"] >= 0 for row in rows)
    assert (quant_static_run / "sensitivity.png").is_file()


def test_checkpoint_is_data_and_source_untouched(quant_static_run: Path, tiny_ckpt: Path):
    before = digest(tiny_ckpt)
    checkpoint = load_checkpoint(quant_static_run / "model.ckpt")  # weights_only=True
    assert checkpoint["model_kind"] == "quantized" and checkpoint["program"].dtype == torch.uint8
    assert checkpoint["parent"] == str(tiny_ckpt)
    assert digest(tiny_ckpt) == before
    assert tiny_ckpt.parent.joinpath("best.ckpt").is_file()


RELOAD = """
import sys, torch
from kta_cli.compress.quantized import quantized_model_from_checkpoint
from kta_cli.engine.checkpoint import load_checkpoint
model = quantized_model_from_checkpoint(load_checkpoint(sys.argv[1]), compile=False)
images = torch.load(sys.argv[2], weights_only=True)
torch.save(model(images).argmax(1), sys.argv[3])
"""


def test_reloads_in_a_fresh_process_with_the_same_predictions(quant_static_run: Path, tmp_path):
    from kta_cli.compress.quantized import quantized_model_from_checkpoint

    checkpoint = load_checkpoint(quant_static_run / "model.ckpt")
    images = torch.randn(32, 3, 16, 16)
    torch.save(images, tmp_path / "images.pt")
    model = quantized_model_from_checkpoint(checkpoint, compile=False)
    here = model(images).argmax(1)
    subprocess.run(
        [
            sys.executable,
            "-c",
            RELOAD,
            str(quant_static_run / "model.ckpt"),
            str(tmp_path / "images.pt"),
            str(tmp_path / "predicted.pt"),
        ],
        check=True,
        capture_output=True,
    )
    there = torch.load(tmp_path / "predicted.pt", weights_only=True)
    assert (here == there).float().mean() >= 0.9


def test_kta_eval_runs_the_quantized_checkpoint(kta, quant_static_run: Path):
    result = kta("eval", f"ckpt={quant_static_run / 'model.ckpt'}", "logger=none")
    assert result.code == 0, result.err
    evaluated = result.metrics("eval")
    assert abs(evaluated["acc"] - metrics_of(quant_static_run)["acc_after"]) < 1e-6


def test_qat_fine_tunes_then_converts_on_the_fx_backend(kta, tiny_ckpt: Path):
    # also shows quant.backend=fx_x86 stays selectable; fx keeps this test fast (pt2e QAT
    # conversion costs minutes here; its training graph is tested in test_quantize_library.py)
    args = [
        f"ckpt={tiny_ckpt}",
        *QUANT_FAST,
        "quant.backend=fx_x86",
        "quant.observer=minmax",
    ]
    result = kta("quantize", *args, "quant.qat_epochs=1")
    assert result.code == 0, result.err
    metrics = result.metrics("quantize")
    assert len(metrics["qat_history"]) == 1 and 0 <= metrics["qat_val_acc"] <= 1
    assert metrics["int8_parameter_bytes"] < 0.3 * metrics["float_parameter_bytes"]
    assert metrics["backend"] == "fx_x86" and metrics["reload_agreement"] == 1.0


def test_keep_float_keeps_the_most_sensitive_layer(quant_static_run: Path):
    metrics = metrics_of(quant_static_run)
    worst = max(metrics["layer_sqnr"], key=lambda row: row["drop_db"])["layer"]
    assert metrics["kept_float"] == [worst]
    checkpoint = load_checkpoint(quant_static_run / "model.ckpt")
    assert checkpoint["quant"]["kept_float"] == [worst]


def test_fp16_halves_the_file_and_evaluates(kta, tiny_ckpt: Path):
    result = kta("quantize", f"ckpt={tiny_ckpt}", *QUANT_FAST, "quant.mode=fp16")
    assert result.code == 0, result.err
    metrics = result.metrics("quantize")
    assert metrics["backend"] == "cast"
    assert 0.45 < metrics["int8_parameter_bytes"] / metrics["float_parameter_bytes"] <= 0.5 + 1e-3
    assert abs(metrics["acc_before"] - metrics["acc_after"]) < 0.02
    evaluated = kta("eval", "ckpt=outputs/quantize/latest", "logger=none")
    assert evaluated.code == 0, evaluated.err


def test_latency_is_measured_against_eager_and_compiled_float(kta, tiny_ckpt: Path):
    fast = [a for a in QUANT_FAST if not a.startswith("measure.latency")]
    result = kta(
        "quantize", f"ckpt={tiny_ckpt}", *fast, "quant.mode=fp16", "measure.latency=true",
        "measure.rounds=1", "measure.repeats=1",
    )  # fmt: skip
    assert result.code == 0, result.err
    metrics = result.metrics("quantize")
    assert isinstance(metrics["float_compile_seconds"], float)  # it compiled, apart from latency
    for batch in ("batch1", "batch4"):
        assert metrics[f"float_compiled_latency_ms_{batch}"] > 0
        ratio = metrics[f"int8_latency_ms_{batch}"] / metrics[f"float_compiled_latency_ms_{batch}"]
        assert metrics[f"latency_ratio_vs_compiled_{batch}"] == ratio
    assert "latency_ratio_vs_compiled_batch1" in result.out  # the console table


def test_explain_refuses_gradient_methods_on_int8_before_any_work(kta, quant_static_run: Path):
    result = kta(
        "explain", f"ckpt={quant_static_run / 'model.ckpt'}", "--method", "saliency", "logger=none"
    )
    assert result.code == 2 and "needs gradients" in result.err and "occlusion" in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert not list((result.cwd / "outputs").glob("explain/*/metrics.json"))  # nothing written


# Mistakes: one line on stderr, exit code 2, before any work.


def error_line(result) -> str:
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    lines = [line for line in result.err.splitlines() if line.startswith("kta quantize: error:")]
    assert len(lines) == 1, result.err
    return lines[0]


def test_missing_checkpoint(kta):
    line = error_line(kta("quantize", "ckpt=nowhere/best.ckpt", *QUANT_FAST))
    assert "checkpoint not found: nowhere/best.ckpt" in line


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("quant.calib_batches=0", "quant.calib_batches must be >= 1"),
        ("quant.observer=minmx", "did you mean 'minmax'"),
        ("quant.backend=pt2e", "did you mean 'pt2e_x86'"),
        ("quant.mode=int4", "quant.mode must be one of static, dynamic, fp16, bf16, got 'int4'"),
        ("quant.qat_epochs=-1", "quant.qat_epochs must be >= 0"),
        ("measure.threads=0", "measure.threads must be > 0"),
        (
            "quant.backend=fx_x86 quant.observer=percentile",
            "percentile needs quant.backend=pt2e_x86",
        ),
        ("quant.aoti=true quant.compile=false", "it needs quant.compile=true"),
        ("quant.aoti=true quant.backend=fx_x86", "quant.backend=pt2e_x86 (here compile="),
        ("quant.aoti=yes", "quant.aoti must be auto, true or false, got 'yes'"),
    ],
)
def test_bad_settings_are_refused_before_any_work(kta, override: str, expected: str):
    line = error_line(kta("quantize", "ckpt=nowhere.ckpt", *QUANT_FAST, *override.split()))
    assert expected in line


def test_an_already_quantized_checkpoint_is_refused(kta, quant_static_run: Path):
    line = error_line(kta("quantize", f"ckpt={quant_static_run / 'model.ckpt'}", *QUANT_FAST))
    assert "already quantized" in line


def test_a_class_count_mismatch_is_refused_before_calibrating(kta, quant_trained_ckpt: Path):
    """A 10-class digits model calibrated and scored on 6-class shapes would report noise and
    record shapes as its data (then kta eval on it refuses): refuse it, as eval and prune do."""
    line = error_line(
        kta(
            "quantize", f"ckpt={quant_trained_ckpt}", *QUANT_FAST, "data=shapes", "data.img_size=16"
        )
    )
    assert "the checkpoint has 10 classes, the data 6" in line


def test_an_ahead_of_time_build_that_fails_is_one_line_naming_the_way_around(
    kta, tiny_ckpt: Path, monkeypatch
):
    """quant.aoti=auto (the default) builds batch 1 with AOTInductor; where that cannot build (an
    op it lacks) the user gets the options that avoid it, and no model file."""
    from kta_cli.compress.quantized import AotiRunner

    def refuse(self, shape, dtype):
        raise RuntimeError("C++ compile error\n  a long compiler log")

    monkeypatch.setattr(AotiRunner, "build", refuse)
    fast = [a for a in QUANT_FAST if a not in ("quant.compile=false", "measure.latency=false")]
    result = kta("quantize", f"ckpt={tiny_ckpt}", *fast, "measure.compiled_float=false")
    line = error_line(result)
    assert "compiling and timing the int8 program failed" in line
    assert "RuntimeError: C++ compile error" in line
    assert "pass quant.aoti=false (torch.compile only), or quant.compile=false" in line
    assert not list((result.cwd / "outputs").rglob("model.ckpt"))
