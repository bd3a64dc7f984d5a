"""Structured pruning shrinks layers consistently; the result reloads without Torch-Pruning."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from kta_cli.compress.prune_layers import head_layers, prunable_layers
from kta_cli.compress.prune_structured import StructuredPruner
from kta_cli.compress.pruned import conv_groups_of, pruned_model_from_checkpoint
from kta_cli.engine.checkpoint import save_checkpoint
from kta_cli.models.factory import create_model


def prune_model(name: str, size: int, ratio: float, scope: str) -> tuple[nn.Module, nn.Module]:
    """(original, pruned) timm models; the head left alone as kta prune does."""
    import torch_pruning as tp

    torch.manual_seed(0)
    original = create_model(name, num_classes=5)
    pruned = create_model(name, num_classes=5)
    pruned.load_state_dict(original.state_dict())
    example = torch.randn(1, 3, size, size)
    StructuredPruner(
        pruned, example, tp.importance.MagnitudeImportance(p=1), ratio=ratio, scope=scope,
        ignored=head_layers(pruned),
    ).step()  # fmt: skip
    return original.eval(), pruned.eval()


def checkpoint_of(name: str, model: nn.Module) -> dict:
    return {
        "model_kind": "pruned",
        "model": model.state_dict(),
        "model_args": {"name": name, "num_classes": 5, "img_size": 16},
        "pruning": {"conv_groups": conv_groups_of(model)},
    }


def test_structured_pruning_removes_channels_consistently() -> None:
    original, pruned = prune_model("test_resnet", 16, 0.5, "layer")
    before, after = prunable_layers(original), prunable_layers(pruned)
    assert after["fc"].out_features == 5  # the head keeps its classes
    shrunk = [n for n, m in after.items() if n != "fc" and m.out_channels < before[n].out_channels]
    assert len(shrunk) == len(after) - 1  # every conv lost channels, at layer scope
    assert after["layer1.0.conv1"].out_channels == before["layer1.0.conv1"].out_channels // 2
    for module in pruned.modules():  # consumers follow their producers
        if isinstance(module, nn.BatchNorm2d):
            assert module.weight.shape == module.running_mean.shape == (module.num_features,)
    assert after["layer1.0.conv2"].in_channels == after["layer1.0.conv1"].out_channels
    assert after["fc"].in_features == after["layer4.0.conv2"].out_channels
    assert sum(p.numel() for p in pruned.parameters()) < 0.4 * sum(
        p.numel() for p in original.parameters()
    )
    assert pruned(torch.randn(2, 3, 16, 16)).shape == (2, 5)


@pytest.mark.parametrize(("name", "size"), [("test_resnet", 16), ("mobilenetv3_small_050", 32)])
def test_pruned_model_rebuilds_from_shapes_alone(name: str, size: int) -> None:
    _, pruned = prune_model(name, size, 0.4, "global")
    rebuilt = pruned_model_from_checkpoint(checkpoint_of(name, pruned)).eval()
    images = torch.randn(2, 3, size, size)
    torch.testing.assert_close(rebuilt(images), pruned(images))


def test_pruned_checkpoint_reloads_in_a_fresh_process_without_torch_pruning(
    tmp_path: Path,
) -> None:
    _, pruned = prune_model("test_resnet", 16, 0.5, "global")
    images = torch.randn(3, 3, 16, 16)
    torch.save({"images": images, "logits": pruned(images).detach()}, tmp_path / "expected.pt")
    save_checkpoint(tmp_path / "model.ckpt", checkpoint_of("test_resnet", pruned))
    script = textwrap.dedent(
        """
        import sys
        sys.modules["torch_pruning"] = None  # any import of it now fails
        import torch
        from kta_cli.engine.checkpoint import load_checkpoint
        from kta_cli.loading import model_from_checkpoint
        model = model_from_checkpoint(load_checkpoint("model.ckpt")).eval()
        expected = torch.load("expected.pt", weights_only=True)
        torch.testing.assert_close(model(expected["images"]), expected["logits"])
        print("reloaded", sum(p.numel() for p in model.parameters()))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == str(sum(p.numel() for p in pruned.parameters()))
