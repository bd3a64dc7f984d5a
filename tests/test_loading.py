"""kta_cli/loading.py: every checkpoint kind comes back as the model it was saved from, and
models/ stays a leaf (no import of compress/ or strategies/, not even inside a function)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from kta_cli.compress.quantize_fx import convert_fx_model, prepare_fx_model
from kta_cli.compress.quantized import CastModel
from kta_cli.engine.checkpoint import save_checkpoint
from kta_cli.errors import KtaError
from kta_cli.loading import checkpoint_kind, load_model, model_from_checkpoint
from kta_cli.models.factory import create_model
from kta_cli.models.heads import attach_head
from tests.compress.test_pruned_reload import checkpoint_of, prune_model

ARGS = {"name": "test_resnet", "num_classes": 5, "img_size": 16}
IMAGES = torch.randn(3, 3, 16, 16)


def trained_like() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("test_resnet", num_classes=5).eval()


def test_plain_checkpoint_with_a_strategy_head_round_trips_through_a_file(tmp_path: Path):
    model = trained_like()
    head = attach_head(model, "mlp", 8)
    save_checkpoint(
        tmp_path / "best.ckpt", {"model": model.state_dict(), "model_args": {**ARGS, "head": head}}
    )
    rebuilt = load_model(tmp_path / "best.ckpt").eval()
    assert isinstance(rebuilt.fc, torch.nn.Sequential)  # the mlp head, not timm's linear
    torch.testing.assert_close(rebuilt(IMAGES), model(IMAGES))


def test_pruned_checkpoint_gets_the_pruned_shapes():
    _, pruned = prune_model("test_resnet", 16, 0.5, "global")
    checkpoint = checkpoint_of("test_resnet", pruned)
    assert checkpoint_kind(checkpoint) == "pruned"
    rebuilt = model_from_checkpoint(checkpoint).eval()
    assert rebuilt.fc.in_features == pruned.fc.in_features < 96  # test_resnet's unpruned width
    torch.testing.assert_close(rebuilt(IMAGES), pruned(IMAGES))


def test_int8_fx_checkpoint_rebuilds_the_quantized_graph():
    prepared = prepare_fx_model(trained_like(), IMAGES, observer="minmax", per_channel=True)
    prepared(IMAGES)  # calibrate
    converted = convert_fx_model(prepared)
    checkpoint = {
        "model_kind": "quantized",
        "quant": {"backend": "fx_x86", "mode": "static", "per_channel": True},
        "model": converted.state_dict(),
        "model_args": ARGS,
        "data": {"in_chans": 3},
    }
    assert checkpoint_kind(checkpoint) == "quantized"
    rebuilt = model_from_checkpoint(checkpoint)
    assert any(t.is_quantized for t in rebuilt.state_dict().values())
    torch.testing.assert_close(rebuilt(IMAGES), converted(IMAGES))


def test_cast_checkpoint_computes_in_bf16_and_answers_in_float32():
    model = trained_like()
    checkpoint = {
        "model_kind": "quantized",
        "quant": {"backend": "cast", "mode": "bf16"},
        "model": model.to(torch.bfloat16).state_dict(),
        "model_args": ARGS,
    }
    assert checkpoint_kind(checkpoint) == "cast"
    rebuilt = model_from_checkpoint(checkpoint)
    assert isinstance(rebuilt, CastModel) and rebuilt.dtype == torch.bfloat16
    logits = rebuilt(IMAGES)
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits, model(IMAGES.bfloat16()).float())


def test_an_unknown_kind_is_one_clear_line():
    with pytest.raises(KtaError, match="unknown model_kind 'distilled'.*newer kta") as error:
        model_from_checkpoint({"model_kind": "distilled", "model": {}, "model_args": ARGS})
    assert "\n" not in str(error.value)


def kta_imports(path: Path) -> set[str]:
    """Every kta_cli module a file imports, at any depth (function-local imports count)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add("." * node.level + (node.module or ""))
    return {name for name in found if name.startswith(("kta_cli", "."))}


def test_models_is_a_leaf():
    package = Path(__file__).parents[1] / "kta_cli" / "models"
    allowed = ("kta_cli.models", "kta_cli.errors", "kta_cli.report")
    imports = {f.name: kta_imports(f) for f in package.glob("*.py")}
    assert {"factory.py", "heads.py", "features.py"} <= set(imports)
    outside = {
        f: sorted(i for i in names if not i.startswith(allowed)) for f, names in imports.items()
    }
    assert outside == {f: [] for f in imports}
