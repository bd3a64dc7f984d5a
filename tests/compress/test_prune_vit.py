"""Structured pruning of a timm ViT (issue 16): heads shrink or leave, the result reloads."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kta_cli.compress.prune_layers import head_layers
from kta_cli.compress.prune_structured import StructuredPruner
from kta_cli.compress.pruned import attention_heads_of, pruned_model_from_checkpoint
from kta_cli.models.factory import create_model
from tests.conftest import TINY


def pruned_vit(attention: str, ratio: float = 0.5) -> tuple[nn.Module, nn.Module]:
    import torch_pruning as tp

    torch.manual_seed(0)
    original = create_model("test_vit", num_classes=5, img_size=16).eval()
    pruned = create_model("test_vit", num_classes=5, img_size=16)
    pruned.load_state_dict(original.state_dict())
    StructuredPruner(
        pruned, torch.randn(1, 3, 16, 16), tp.importance.MagnitudeImportance(p=1), ratio=ratio,
        scope="layer", ignored=head_layers(pruned), attention=attention,
    ).step()  # fmt: skip
    return original, pruned.eval()


@pytest.mark.parametrize(
    ("attention", "heads", "head_dim"), [("head_dims", 2, 16), ("heads", 1, 32)]
)
def test_vit_attention_shrinks_as_asked_and_rebuilds_from_the_checkpoint(
    attention: str, heads: int, head_dim: int
):
    original, pruned = pruned_vit(attention)
    block = pruned.blocks[0].attn
    assert original.blocks[0].attn.num_heads == 2 and original.blocks[0].attn.head_dim == 32
    assert (block.num_heads, block.head_dim) == (heads, head_dim)  # test_vit: 2 heads of 32
    assert block.qkv.out_features == 3 * heads * head_dim
    assert pruned.blocks[0].mlp.fc1.out_features < original.blocks[0].mlp.fc1.out_features
    assert pruned.head.out_features == 5 and pruned.num_features == pruned.head.in_features
    checkpoint = {
        "model_kind": "pruned",
        "model": pruned.state_dict(),
        "model_args": {"name": "test_vit", "num_classes": 5, "img_size": 16},
        "pruning": {"num_heads": attention_heads_of(pruned)},
    }
    rebuilt = pruned_model_from_checkpoint(checkpoint).eval()
    images = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(images), pruned(images))
    assert rebuilt.blocks[0].attn.num_heads == heads


def test_kta_prune_a_vit_then_eval_the_pruned_checkpoint(kta):
    assert kta("train", *TINY, "model=test_vit").code == 0
    pruned = kta("prune", "finetune.epochs=0", "measure.latency=false", "logger=none")
    assert pruned.code == 0, pruned.err
    metrics = pruned.metrics("prune")
    assert metrics["params_after"] < 0.6 * metrics["params_before"]
    evaluated = kta("eval", f"ckpt={pruned.run_dir('prune')}", "logger=none")
    assert evaluated.code == 0, evaluated.err
    assert evaluated.metrics("eval")["acc"] == pytest.approx(metrics["test_acc_after_finetune"])


def test_vit_sensitivity_prunes_one_layer_with_its_heads_aligned():
    import torch_pruning as tp

    from kta_cli.compress.prune_structured import prune_one_layer

    model = create_model("test_vit", num_classes=5, img_size=16).eval()
    importance = tp.importance.MagnitudeImportance(p=1)
    removed = prune_one_layer(
        model, "blocks.0.attn.qkv", 0.5, importance, torch.randn(1, 3, 16, 16), head_layers(model)
    )
    attention = model.blocks[0].attn
    assert removed == 96 and (attention.num_heads, attention.head_dim) == (2, 16)
    assert model.blocks[1].attn.head_dim == 32  # only the layer asked for
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 5)
