"""What `kta export` writes beside the model: export.json (how to call it, how it was made),
metrics.json, TensorBoard scalars, and the console tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kta_cli.export.latency import rich_table
from kta_cli.export.onnx import INPUT_NAME, OUTPUT_NAME, OnnxExport
from kta_cli.report.reporter import TensorBoard, console, print_table
from kta_cli.report.run_folder import mark_latest, write_metrics, write_text_atomic


def export_record(
    exported: OnnxExport, checkpoint: dict[str, Any], source: Path, img_size: int
) -> dict[str, Any]:
    """export.json: what a deployment needs to call the model, and where it came from."""
    data = checkpoint["data"]
    return {
        "file": exported.path.name,
        "exporter": exported.exporter,  # dynamo, or torchscript when dynamo failed
        "dynamo_error": exported.dynamo_error,
        "opset": exported.opset,
        "input": {
            "name": INPUT_NAME,
            "shape": ["batch", 3, img_size, img_size],
            "dtype": "float32",
            "range": [0.0, 1.0],  # normalisation is inside the model
            "mean": data["mean"],
            "std": data["std"],
        },
        "output": {
            "name": OUTPUT_NAME,
            "shape": ["batch", checkpoint["model_args"]["num_classes"]],
        },
        "class_names": checkpoint.get("class_names"),
        "model": checkpoint["model_args"]["name"],
        "model_kind": checkpoint.get("model_kind", "timm"),
        "checkpoint": str(source),
    }


def write_export_json(run_dir: Path, record: dict[str, Any]) -> Path:
    path = run_dir / "export.json"
    write_text_atomic(path, json.dumps(record, indent=2) + "\n")
    return path


def flat(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Numbers of a nested dict, keys joined by '/', for TensorBoard."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = value
    return out


def report(
    run_dir: Path,
    metrics: dict[str, Any],
    *,
    title: str,
    skipped: dict[str, str],
    tensorboard: bool,
) -> None:
    board = TensorBoard(run_dir if tensorboard else None)
    board.scalars(flat(metrics), 0, prefix="export/")
    board.close()
    write_metrics(run_dir, metrics)
    mark_latest(run_dir, "export")
    rows = {
        f"{side} {key}": value
        for side in ("fp32", "int8")
        for key, value in metrics.get(side, {}).items()
        if key != "file_bytes"
    }
    rows.update({f"{name} bytes": size for name, size in metrics["file_bytes"].items()})
    rows["exporter"] = metrics["exporter"]
    print_table(title, rows)
    if metrics.get("latency_ms"):
        table = rich_table(
            "latency (median ms, interleaved)", metrics["latency_ms"], skipped, "torch_eager"
        )
        console.print(table)
    if not metrics["fp32"]["parity_ok"]:
        console.print(
            f"[bold red]warning:[/] the ONNX model differs from torch by "
            f"{metrics['fp32']['max_abs_diff']:.2g} (> export.tolerance); check before deploying"
        )
    console.print(f"run folder: {run_dir}")
