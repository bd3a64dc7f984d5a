"""A fresh classifier head on a timm model: `linear` (timm's own) or a small `mlp`.

The head kind is recorded in the checkpoint's model_args so `model_from_checkpoint` rebuilds it.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from kta_cli.errors import KtaError

HEADS = ("keep", "linear", "mlp")


def classifier_path(model: nn.Module) -> str:
    classifier = getattr(model, "pretrained_cfg", {}).get("classifier", "fc")
    if isinstance(classifier, (list, tuple)):
        classifier = classifier[0]
    return classifier


def attach_head(model: nn.Module, kind: str = "linear", hidden: int = 256) -> dict[str, Any] | None:
    """Replace the classifier with a new `kind` head (same class count); returns its build args."""
    if kind not in HEADS:
        raise KtaError(f"strategy.head must be one of {', '.join(HEADS)}, got {kind!r}")
    if kind == "keep":
        return None
    if not hasattr(model, "reset_classifier"):
        raise KtaError(f"strategy.head={kind} needs a timm model (reset_classifier)")
    path = classifier_path(model)
    old = model.get_submodule(path)
    linear = (
        old
        if isinstance(old, nn.Linear)
        else next((m for m in reversed(list(old.modules())) if isinstance(m, nn.Linear)), None)
    )
    if linear is None:
        raise KtaError(f"strategy.head={kind}: no linear classifier found at {path}")
    num_classes = linear.out_features
    model.reset_classifier(num_classes)  # timm builds a fresh linear head (and its pooling)
    if kind == "mlp":
        if hidden < 1:
            raise KtaError(f"strategy.head_hidden must be >= 1, got {hidden}")
        features = model.get_submodule(path).in_features
        mlp = nn.Sequential(
            nn.Linear(features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes)
        )
        model.set_submodule(path, mlp)
    return {"kind": kind, "hidden": hidden}
