"""kta explain's raw heatmaps as one safetensors file, loadable without unpickling anything.

heatmaps.safetensors holds, for N explained images:
    heatmap.<method>: float32 (N, H, W), one tensor per method, in the order the images were read
    targets: int64 (N,), the class each heatmap explains
    predictions: int64 (N,), the class the model predicted
and in its metadata (strings, as safetensors stores them): `format` ("kta-heatmaps"),
`image_ids` and `class_names` (JSON lists; class_names may be empty), `methods` (JSON list, in
the order written).

Read it with read_heatmaps(path), or elsewhere with
    safetensors.torch.load_file(path) and safetensors.safe_open(path, "pt").metadata().
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from kta_cli.errors import KtaError

FORMAT = "kta-heatmaps"
PREFIX = "heatmap."


@dataclass
class StoredHeatmaps:
    heatmaps: dict[str, torch.Tensor]  # method -> (N, H, W)
    image_ids: list[str]
    targets: torch.Tensor
    predictions: torch.Tensor
    class_names: list[str] = field(default_factory=list)


def write_heatmaps(
    path: Path,
    heatmaps: dict[str, torch.Tensor],
    image_ids: list[str],
    targets: torch.Tensor,
    predictions: torch.Tensor,
    *,
    class_names: list[str] | None = None,
) -> Path:
    """Write atomically (a temporary file in the same folder, then os.replace)."""
    count = len(image_ids)
    for method, maps in heatmaps.items():
        if maps.dim() != 3 or len(maps) != count:
            raise ValueError(
                f"heatmap {method!r}: expected ({count}, H, W), got {tuple(maps.shape)}"
            )
    if len(targets) != count or len(predictions) != count:
        raise ValueError(
            f"{count} image ids, {len(targets)} targets, {len(predictions)} predictions"
        )
    tensors = {
        f"{PREFIX}{m}": maps.detach().float().cpu().contiguous() for m, maps in heatmaps.items()
    }
    tensors["targets"] = targets.detach().long().cpu().contiguous()
    tensors["predictions"] = predictions.detach().long().cpu().contiguous()
    metadata = {
        "format": FORMAT,
        "image_ids": json.dumps(list(image_ids)),
        "class_names": json.dumps(list(class_names or [])),
        "methods": json.dumps(list(heatmaps)),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp_name, metadata=metadata)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def read_heatmaps(path: Path) -> StoredHeatmaps:
    """What write_heatmaps wrote; a file of another kind is a KtaError."""
    path = Path(path)
    if not path.is_file():
        raise KtaError(f"heatmap file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except Exception as error:  # safetensors parses bytes only; any failure means bad bytes
        raise KtaError(f"{path} is not a safetensors file ({type(error).__name__})") from error
    if metadata.get("format") != FORMAT:
        raise KtaError(f"{path} is not a kta heatmap file (written by kta explain)")
    methods = json.loads(metadata["methods"])
    return StoredHeatmaps(
        heatmaps={m: tensors[f"{PREFIX}{m}"] for m in methods},
        image_ids=json.loads(metadata["image_ids"]),
        targets=tensors["targets"],
        predictions=tensors["predictions"],
        class_names=json.loads(metadata["class_names"]),
    )
