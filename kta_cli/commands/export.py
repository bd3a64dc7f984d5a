"""`kta export ckpt=... [format=onnx|tensorrt]`: a deployable model with its normalisation
inside, parity against torch on the checkpoint's test split, int8 QDQ, latency side by side.

Library code: kta_cli/export/ (onnx.py, int8.py, parity.py, latency.py, tensorrt.py, report.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from kta_cli.data.datasets import DataBundle, build_data, spec_from_dict
from kta_cli.data.loaders import collect
from kta_cli.engine.checkpoint import (
    float_only,
    load_checkpoint,
    read_metadata,
    resolve_checkpoint,
)
from kta_cli.engine.evaluate import checkpoint_data
from kta_cli.engine.state import seed_everything
from kta_cli.errors import KtaError
from kta_cli.export.int8 import quantize_onnx_int8
from kta_cli.export.latency import batch_of, measure_latency
from kta_cli.export.onnx import OnnxExport, export_onnx
from kta_cli.export.parity import agreement, logits_of, onnx_runner
from kta_cli.export.report import export_record, report, write_export_json
from kta_cli.export.tensorrt import build_tensorrt, tensorrt_tool
from kta_cli.loading import model_from_checkpoint
from kta_cli.report.measure import file_bytes
from kta_cli.report.run_folder import current_run_dir
from kta_cli.robustness.attacks import PixelModel, to_pixels
from kta_cli.schema.store import section


def float_source(spec: str) -> tuple[Path, dict[str, Any]]:
    """The checkpoint to export; an int8 or cast program is refused, naming its float parent."""
    path = resolve_checkpoint(spec, usable=float_only)  # latest: the newest float model
    checkpoint = load_checkpoint(path)
    why = float_only(checkpoint)
    if why:
        parent = checkpoint.get("parent")
        instead = f"kta export ckpt={parent}" if parent else "the float checkpoint it came from"
        raise KtaError(
            f"{path} is {why} (kta quantize's output), which does not export to ONNX; export "
            f"its float parent instead: {instead} (add export.int8=true for an int8 ONNX model)"
        )
    return path, checkpoint


def pixels_of(loader: Any, data: dict[str, Any], limit: int | None) -> tuple[torch.Tensor, ...]:
    """[0, 1] images and labels: the exported model normalises them itself (PixelModel)."""
    images, labels = collect(loader, limit)
    return to_pixels(images, data["mean"], data["std"]), labels


def int8_model(
    settings: dict[str, Any], float_path: Path, train: Any, data: dict[str, Any]
) -> Path:
    """Static int8 QDQ, calibrated on export.calib_batches training batches."""
    batch_size = getattr(train, "batch_size", None) or 32
    calibration, _ = pixels_of(train, data, settings["calib_batches"] * batch_size)
    batch_size = min(batch_size, len(calibration))
    # equal sizes: onnxruntime's histogram calibrators (entropy, percentile) stack the batches
    batches = list(calibration[: len(calibration) // batch_size * batch_size].split(batch_size))
    return quantize_onnx_int8(
        float_path,
        float_path.with_name("model.int8.onnx"),
        batches,
        method=settings["calibration"],
        per_channel=settings["per_channel"],
        percentile=settings["percentile"],
    )


def parity(
    path: Path, threads: int, reference: torch.Tensor, images: torch.Tensor, labels: torch.Tensor
) -> dict[str, Any]:
    """onnxruntime's logits against torch's on the same test images."""
    return agreement(reference, logits_of(onnx_runner(path, threads), images), labels)


def scoring_data(cfg: DictConfig, checkpoint: dict[str, Any]) -> DataBundle:
    """The checkpoint's own data set (or data=...), as kta eval and kta quantize read it."""
    override = section(cfg, "data") if cfg.get("data") is not None else None
    data = build_data(spec_from_dict(checkpoint_data(checkpoint, override)))
    classes = checkpoint["model_args"]["num_classes"]
    if len(data.class_names) != classes:
        raise KtaError(
            f"the checkpoint has {classes} classes, the data {len(data.class_names)}; "
            "pick data.classes to match"
        )
    return data


def float_onnx(
    model: torch.nn.Module, example: torch.Tensor, checkpoint: dict[str, Any], opset: int | None
) -> OnnxExport:
    parent = checkpoint.get("parent")
    return export_onnx(
        model,
        example,
        current_run_dir() / "model.onnx",
        opset=opset,
        name=checkpoint["model_args"]["name"],
        fallback=f"try its parent: kta export ckpt={parent}" if parent else "KTA_DEBUG=1 shows why",
    )


def kta_int8_of(path: Path, outputs: Path = Path("outputs")) -> Path | None:
    """The newest `kta quantize` int8 program made from `path` (its parent), for the table."""
    made = []
    for candidate in outputs.glob("quantize/**/model.ckpt"):
        if any(part == "latest" or part.startswith(".") for part in candidate.parts):
            continue
        metadata = read_metadata(candidate)
        backend = (metadata.get("quant") or {}).get("backend")
        if metadata.get("parent") == str(path) and backend in ("pt2e_x86", "fx_x86"):
            made.append(candidate.resolve())
    return max(made, key=lambda p: p.stat().st_mtime, default=None)


def run(cfg: DictConfig) -> dict[str, Any]:
    settings = section(cfg, "export")
    threads = settings["threads"]
    torch.set_num_threads(threads)
    seed_everything(cfg.seed)
    tool = tensorrt_tool() if cfg.format == "tensorrt" else None  # refuse before any work
    path, checkpoint = float_source(cfg.ckpt)
    recorded = checkpoint["data"]
    model = PixelModel(model_from_checkpoint(checkpoint), recorded["mean"], recorded["std"]).eval()
    data = scoring_data(cfg, checkpoint)
    images, labels = pixels_of(data.test, recorded, settings["parity_images"])
    # two images: an example of batch 1 would fix the batch dimension at 1 in the dynamo graph
    exported = float_onnx(model, batch_of(images, 2), checkpoint, settings["opset"])
    reference = logits_of(model, images)
    fp32 = parity(exported.path, threads, reference, images, labels)
    fp32["parity_ok"] = fp32["max_abs_diff"] <= settings["tolerance"] and fp32["agreement"] == 1
    metrics: dict[str, Any] = {
        "checkpoint": str(path),
        "parent": str(path),
        "format": cfg.format,
        "exporter": exported.exporter,
        "dynamo_error": exported.dynamo_error,
        "opset": exported.opset,
        "threads": threads,
        "test_images": len(labels),
        "fp32": fp32,
    }
    files = {"fp32": exported.path}
    if settings["int8"]:
        files["int8"] = int8_model(settings, exported.path, data.train, recorded)
        metrics["int8"] = {
            **parity(files["int8"], threads, reference, images, labels),
            "calibration": settings["calibration"],
            "calib_batches": settings["calib_batches"],
        }
    metrics["file_bytes"] = {
        "checkpoint": file_bytes(path),
        **{f"onnx_{kind}": file_bytes(file) for kind, file in files.items()},
    }
    if tool is not None:
        metrics["tensorrt"] = build_tensorrt(
            tool, model, exported.path, batch_of(images, 2), settings
        )
    skipped: dict[str, str] = {}
    if settings["latency"]:
        extra, aoti = {}, False
        program = kta_int8_of(path) if settings["kta_int8"] else None
        if program is not None:
            int8 = model_from_checkpoint(load_checkpoint(program))
            extra["kta_int8"] = PixelModel(int8, recorded["mean"], recorded["std"]).eval()
            metrics["kta_int8_program"] = str(program)
            aoti = getattr(int8, "aoti", False)  # torch compiled the way the int8 program is
        latency, skipped = measure_latency(model, files, images, settings, extra, aoti)
        metrics.update(latency)
    run_dir = current_run_dir()
    record = export_record(exported, checkpoint, path, recorded["img_size"])
    write_export_json(run_dir, {**record, "parity": fp32, "int8": metrics.get("int8")})
    name = checkpoint["model_args"]["name"]
    title = f"kta export: {name} on {data.spec.name} to ONNX ({exported.exporter} exporter)"
    report(run_dir, metrics, title=title, skipped=skipped, tensorboard=bool(cfg.logger.tensorboard))
    return metrics
