"""The raw heatmaps file: what kta explain writes is what a user loads, without unpickling."""

from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from kta_cli.errors import KtaError
from kta_cli.explain.store import read_heatmaps, write_heatmaps


def test_round_trip_keeps_every_tensor_id_and_name(tmp_path: Path):
    heatmaps = {"gradcam": torch.rand(3, 4, 5), "occlusion": torch.rand(3, 4, 5)}
    ids, targets, predictions = (
        ["a.png", "b.png", "c.png"],
        torch.tensor([0, 2, 1]),
        torch.tensor([0, 1, 1]),
    )
    path = write_heatmaps(
        tmp_path / "heatmaps.safetensors",
        heatmaps,
        ids,
        targets,
        predictions,
        class_names=["x", "y", "z"],
    )
    stored = read_heatmaps(path)
    assert list(stored.heatmaps) == ["gradcam", "occlusion"]
    for method, maps in heatmaps.items():
        assert torch.equal(stored.heatmaps[method], maps)
    assert stored.image_ids == ids and stored.class_names == ["x", "y", "z"]
    assert torch.equal(stored.targets, targets) and torch.equal(stored.predictions, predictions)
    # Readable with safetensors alone, as the module docstring tells a user.
    assert set(load_file(path)) == {
        "heatmap.gradcam",
        "heatmap.occlusion",
        "targets",
        "predictions",
    }
    with safe_open(str(path), framework="pt") as handle:
        assert handle.metadata()["format"] == "kta-heatmaps"
    assert [p.name for p in tmp_path.iterdir()] == ["heatmaps.safetensors"]  # no temporary left


def test_mismatched_lengths_and_foreign_files_are_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="expected"):
        write_heatmaps(
            tmp_path / "h.safetensors",
            {"m": torch.rand(2, 4, 4)},
            ["a"],
            torch.zeros(1),
            torch.zeros(1),
        )
    other = tmp_path / "other.safetensors"
    other.write_bytes(b"not safetensors at all")
    with pytest.raises(KtaError, match="not a safetensors file"):
        read_heatmaps(other)
    with pytest.raises(KtaError, match="not found"):
        read_heatmaps(tmp_path / "missing.safetensors")
