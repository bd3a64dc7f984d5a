"""`kta export` end to end on tiny models: the ONNX file takes any batch, predicts as torch does,
its int8 QDQ copy mostly agrees, and every user mistake is one line, exit 2, no model file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from kta_cli.engine.checkpoint import load_checkpoint, save_checkpoint
from kta_cli.export import onnx as onnx_export
from tests.conftest import run_cli_in
from tests.settings import EXPLAIN_BARE

FAST = ["logger=none", "export.latency=false"]
TABLE = ["export.compile=false", "export.batch_sizes=[1,4]", "export.rounds=1", "export.repeats=1"]


def metrics_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def onnx_files(folder: Path) -> list[Path]:
    return sorted(p for p in (folder / "outputs").rglob("*") if ".onnx" in p.name)


@pytest.fixture(scope="module")
def int8_run(tmp_path_factory: pytest.TempPathFactory, tiny_ckpt: Path) -> Path:
    """test_resnet to float and int8 ONNX, with a latency table (no compile: fast)."""
    folder = tmp_path_factory.mktemp("export_int8")
    args = [f"ckpt={tiny_ckpt}", "export.int8=true", "export.calib_batches=2", "logger=none"]
    return run_cli_in(folder, "export", *args, *TABLE)


def test_float_onnx_predicts_as_torch_on_the_test_split(int8_run: Path, tiny_ckpt: Path):
    metrics = metrics_of(int8_run)
    assert metrics["exporter"] == "dynamo" and metrics["dynamo_error"] is None
    assert metrics["fp32"]["max_abs_diff"] < 1e-4 and metrics["fp32"]["agreement"] == 1.0
    assert metrics["fp32"]["acc"] == metrics["fp32"]["reference_acc"]
    assert metrics["test_images"] > 100 and metrics["parent"] == str(tiny_ckpt)


def test_int8_qdq_agrees_with_float_and_is_smaller(int8_run: Path):
    int8 = metrics_of(int8_run)["int8"]
    sizes = metrics_of(int8_run)["file_bytes"]
    assert int8["agreement"] >= 0.9 and abs(int8["acc"] - int8["reference_acc"]) < 0.05
    assert int8["calibration"] == "minmax"
    assert sizes["onnx_int8"] < 0.5 * sizes["onnx_fp32"]
    graph = (int8_run / "model.int8.onnx").read_bytes()
    assert b"QuantizeLinear" in graph and b"DequantizeLinear" in graph


def test_the_file_takes_any_batch_of_pixel_images(int8_run: Path):
    record = json.loads((int8_run / "export.json").read_text())
    assert record["input"]["shape"] == ["batch", 3, 16, 16] and record["input"]["range"] == [0, 1]
    session = ort.InferenceSession(str(int8_run / record["file"]))
    for batch in (1, 5):
        images = np.random.default_rng(0).random((batch, 3, 16, 16), dtype=np.float32)
        assert session.run(None, {"images": images})[0].shape == (batch, 10)


def test_latency_table_has_every_runtime_at_each_batch(int8_run: Path):
    metrics = metrics_of(int8_run)
    rows = metrics["latency_ms"]
    assert set(rows) == {"torch_eager", "onnxruntime_fp32", "onnxruntime_int8"}
    assert all(set(row) == {"batch1", "batch4"} for row in rows.values())
    assert metrics["latency_ratio_vs_eager"]["torch_eager"]["batch1"] == 1.0


def test_a_pruned_vit_exports_with_parity(kta, vit_ckpt: Path):
    # a ViT whose heads lost half their width (issue 16: exports like a pruned CNN)
    pruned = kta("prune", f"ckpt={vit_ckpt}", "finetune.epochs=0", "measure.latency=false",
                 "logger=none", "trainer.progress=false")  # fmt: skip
    assert pruned.code == 0, pruned.err
    result = kta("export", f"ckpt={pruned.run_dir('prune')}", *FAST)
    assert result.code == 0, result.err
    fp32 = result.metrics("export")["fp32"]
    assert fp32["max_abs_diff"] < 1e-4 and fp32["agreement"] == 1.0
    # and it explains like a pruned CNN (Grad-CAM on the narrower blocks' token grid)
    explained = kta("explain", f"ckpt={pruned.run_dir('prune')}", "--method", "gradcam", "n=1",
                    *EXPLAIN_BARE)  # fmt: skip
    assert explained.code == 0, explained.err
    assert (explained.run_dir("explain") / "images" / "test_0000.png").is_file()


def test_torchscript_fallback_is_used_and_recorded(kta, tiny_ckpt, monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("dynamo cannot trace this\nsecond line")

    monkeypatch.setitem(onnx_export.EXPORTERS, "dynamo", refuse)
    result = kta("export", f"ckpt={tiny_ckpt}", *FAST, "export.parity_images=64")
    assert result.code == 0, result.err
    metrics = result.metrics("export")
    assert metrics["exporter"] == "torchscript"
    assert metrics["dynamo_error"] == "RuntimeError: dynamo cannot trace this"
    assert metrics["fp32"]["max_abs_diff"] < 1e-4 and metrics["fp32"]["agreement"] == 1.0


def test_a_model_neither_exporter_handles_is_one_line(kta, tiny_ckpt, monkeypatch):
    def refuse(model, example, path, opset):
        Path(path).write_bytes(b"half a model")  # a failure after writing must leave nothing
        raise RuntimeError("unsupported operator aten::frobnicate")

    monkeypatch.setattr(onnx_export, "EXPORTERS", {"dynamo": refuse, "torchscript": refuse})
    result = kta("export", f"ckpt={tiny_ckpt}", *FAST)
    assert result.code == 2 and len(result.err.strip().splitlines()) == 1
    assert "could not export test_resnet" in result.err and "aten::frobnicate" in result.err
    assert "TorchScript fallback" in result.err
    assert onnx_files(result.cwd) == []


def test_a_quantized_program_names_its_float_parent(kta, tiny_ckpt, tmp_path):
    checkpoint = load_checkpoint(tiny_ckpt)
    int8 = {**checkpoint, "model_kind": "quantized", "quant": {"backend": "pt2e_x86"}}
    saved = save_checkpoint(tmp_path / "int8.ckpt", {**int8, "parent": str(tiny_ckpt)})
    result = kta("export", f"ckpt={saved}", *FAST)
    assert result.code == 2 and len(result.err.strip().splitlines()) == 1
    assert "quantized int8 program" in result.err and f"kta export ckpt={tiny_ckpt}" in result.err
    assert onnx_files(result.cwd) == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["format=onxx"], "did you mean 'onnx'"),
        (["export.calibration=entropyy"], "did you mean 'entropy'"),
        (["export.batch_sizes=[1,0]"], "export.batch_sizes[1] must be > 0"),
    ],
)
def test_bad_settings_are_one_line(kta, tiny_ckpt, args, expected):
    result = kta("export", f"ckpt={tiny_ckpt}", *FAST, *args)
    assert result.code == 2 and expected in result.err, result.err
    assert onnx_files(result.cwd) == []


def test_tensorrt_without_cuda_says_what_it_needs(kta, tiny_ckpt, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = kta("export", f"ckpt={tiny_ckpt}", "format=tensorrt", *FAST)
    assert result.code == 2 and len(result.err.strip().splitlines()) == 1
    assert "needs a CUDA machine with torch-tensorrt or trtexec" in result.err
    assert onnx_files(result.cwd) == []


def tensorrt_here() -> bool:
    """CUDA and torch-tensorrt or trtexec on this machine (never in CI)."""
    from kta_cli.errors import KtaError
    from kta_cli.export.tensorrt import tensorrt_tool

    try:
        return bool(tensorrt_tool())
    except KtaError:
        return False


@pytest.mark.skipif(not tensorrt_here(), reason="needs CUDA and torch-tensorrt or trtexec")
def test_tensorrt_engine_is_built_beside_the_onnx_file_on_a_gpu(kta, tiny_ckpt):
    result = kta("export", f"ckpt={tiny_ckpt}", "format=tensorrt", *FAST)
    assert result.code == 0, result.err
    engine = result.metrics("export")["tensorrt"]
    assert Path(engine["engine"]).is_file() and Path(engine["engine"]).stat().st_size > 0
    if engine["tool"] == "torch_tensorrt":  # checked against torch on CUDA before it is saved
        assert engine["max_abs_diff_cuda"] < 1e-2
    else:  # trtexec timed the engine itself
        assert any("Latency" in line for line in engine["trtexec_summary"])


def test_the_table_finds_kta_quantizes_program_of_this_checkpoint(tmp_path, tiny_ckpt):
    from kta_cli.commands.export import kta_int8_of

    checkpoint = load_checkpoint(tiny_ckpt)
    for run, parent, backend in [
        ("a", tiny_ckpt, "pt2e_x86"),  # the one
        ("b", tmp_path / "other.ckpt", "pt2e_x86"),  # made from another checkpoint
        ("c", tiny_ckpt, "cast"),  # fp16: not an int8 program
    ]:
        folder = tmp_path / "outputs" / "quantize" / run
        folder.mkdir(parents=True)
        payload = {**checkpoint, "model_kind": "quantized", "quant": {"backend": backend}}
        save_checkpoint(folder / "model.ckpt", {**payload, "parent": str(parent)})
    found = kta_int8_of(tiny_ckpt, tmp_path / "outputs")
    assert found == (tmp_path / "outputs" / "quantize" / "a" / "model.ckpt").resolve()
    assert kta_int8_of(tmp_path / "other.ckpt", tmp_path / "nothing") is None


def test_a_single_test_image_still_gives_a_dynamic_batch(kta, tiny_ckpt):
    result = kta("export", f"ckpt={tiny_ckpt}", *FAST, "export.parity_images=1")
    assert result.code == 0, result.err
    metrics = result.metrics("export")
    assert metrics["test_images"] == 1 and metrics["exporter"] == "dynamo"
    session = ort.InferenceSession(str(result.run_dir("export") / "model.onnx"))
    images = np.zeros((3, 3, 16, 16), dtype=np.float32)
    assert session.run(None, {"images": images})[0].shape == (3, 10)
