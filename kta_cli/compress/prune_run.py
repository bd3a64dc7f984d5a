"""A pruning run: the model, its data and settings (Session), the structured and unstructured
step loops, per-layer sensitivity, and the pruned checkpoint. Typed settings, no config."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kta_cli.compress.prune_layers import layers_to_prune
from kta_cli.compress.prune_schedule import (
    IterativeResult,
    iterative_prune,
    schedule_ratios,
    sensitivity,
)
from kta_cli.compress.prune_structured import (
    StructuredPruner,
    accumulate_gradients,
    check_forward,
    count_macs_and_params,
    prune_one_layer,
)
from kta_cli.compress.prune_unstructured import make_permanent, overall_sparsity, prune_unstructured
from kta_cli.compress.pruned import attention_heads_of, conv_groups_of
from kta_cli.compress.steps import compression_step
from kta_cli.data.datasets import spec_as_dict
from kta_cli.engine.checkpoint import save_checkpoint
from kta_cli.engine.finetune import fine_tune
from kta_cli.engine.loop import evaluate
from kta_cli.engine.run import checkpoint_metadata
from kta_cli.engine.tasks import ClassificationTask
from kta_cli.report.reporter import console

STRUCTURED = "structured pruning (Torch-Pruning)"
OTHER_WAY = "prune.method=unstructured avoids it"


@dataclass
class PruneSettings:
    """configs/prune.yaml's prune section, with the importance criterion already built."""

    method: str = "structured"
    ratio: float = 0.5
    scope: str = "global"
    steps: int = 1
    schedule: str = "linear"
    max_layer_ratio: float = 0.9
    round_to: int | str | None = "auto"  # "auto": prune_structured.auto_kept_channels
    attention: str = "head_dims"  # ViT attention blocks: shrink every head | remove whole heads
    max_allowed_loss: float | None = None
    sensitivity_ratios: list[float] = field(default_factory=lambda: [0.25, 0.5, 0.75])
    criterion: str = "l1"  # the importance's name
    importance: Any = None  # a torch_pruning importance (structured)
    gradients: bool = False  # the importance needs gradients (taylor)
    gradient_batches: int = 4


@dataclass
class FineTuneSettings:
    """After each pruning step, on the checkpoint's training split (epochs=0: none)."""

    epochs: int = 2
    lr: float = 0.01
    optimizer: str = "sgd"
    weight_decay: float = 0.0
    schedule: str = "cosine"
    progress: bool = False


class Session:
    """The model being pruned, its data and the measurements every stage shares."""

    def __init__(
        self, model: torch.nn.Module, name: str, data: Any, device: torch.device, *,
        settings: PruneSettings, finetune: FineTuneSettings,
        selection: tuple[list[str], dict[str, float]],
    ) -> None:  # fmt: skip
        self.model, self.model_name, self.data, self.device = model, name, data, device
        self.settings, self.finetune = settings, finetune
        size = data.spec.img_size
        self.example = torch.randn(1, 3, size, size, device=device)
        self.ignored, self.layer_ratios = selection
        self.layers = layers_to_prune(model, self.ignored)
        self.criterion = settings.criterion
        self.importance = settings.importance
        self.targets = schedule_ratios(settings.ratio, settings.steps, settings.schedule)

    def evaluate(self, model: torch.nn.Module | None = None, test: bool = True) -> dict[str, float]:
        task = ClassificationTask((model or self.model).to(self.device))
        values = evaluate(task, self.data.val, device=self.device)
        if test:
            tested = evaluate(task, self.data.test, device=self.device)
            values.update(test_loss=tested["loss"], test_acc=tested["acc"])
        return values

    def gradients_if_needed(self, model: torch.nn.Module) -> None:
        if self.settings.gradients:
            self.data.train.set_epoch(0, 0)
            batches = self.settings.gradient_batches
            accumulate_gradients(model, iter(self.data.train), batches, self.device)

    def fine_tune(self, step: int) -> bool:
        ft = self.finetune
        if ft.epochs == 0:
            return False
        console.print(f"step {step}: fine-tuning {ft.epochs} epoch(s)")
        fine_tune(
            self.model, self.data.train, self.data.val, epochs=ft.epochs, lr=ft.lr,
            optimizer=ft.optimizer, weight_decay=ft.weight_decay, schedule=ft.schedule,
            device=str(self.device), progress=ft.progress,
        )  # fmt: skip
        return True

    def step_ratio(self, layer_ratio: float, step: int) -> float:
        settings = self.settings
        return schedule_ratios(layer_ratio, settings.steps, settings.schedule)[step]


def run_structured(session: Session) -> IterativeResult:
    settings, model = session.settings, session.model
    macs0, params0 = count_macs_and_params(model, session.example)
    with compression_step(STRUCTURED, OTHER_WAY):
        pruner = StructuredPruner(
            model, session.example, session.importance, ratio=settings.ratio,
            steps=settings.steps, schedule=settings.schedule, scope=settings.scope,
            layer_ratios=session.layer_ratios, ignored=session.ignored,
            max_layer_ratio=settings.max_layer_ratio, round_to=settings.round_to,
            attention=settings.attention,
        )  # fmt: skip

    def prune_step(step: int) -> dict[str, Any]:
        session.gradients_if_needed(model)
        with compression_step(STRUCTURED, OTHER_WAY):
            pruner.step()
        model.zero_grad(set_to_none=True)
        check_forward(model, session.example, session.model_name)
        macs, params = count_macs_and_params(model, session.example)
        console.print(f"step {step}: {params0} -> {params} parameters, {macs0} -> {macs} MACs")
        return {"sparsity": 1 - params / params0, "params": params, "macs": macs}

    return iterative_prune(
        model, targets=session.targets, prune_step=prune_step, fine_tune=session.fine_tune,
        evaluate=session.evaluate, snapshot=lambda: copy.deepcopy(model),
        max_allowed_loss=settings.max_allowed_loss,
    )  # fmt: skip


def run_unstructured(session: Session) -> IterativeResult:
    settings, model = session.settings, session.model

    def prune_step(step: int) -> dict[str, Any]:
        make_permanent(model)
        session.gradients_if_needed(model)
        prune_unstructured(
            session.layers, session.targets[step], criterion=session.criterion,
            scope=settings.scope,
            layer_ratios={n: session.step_ratio(r, step) for n, r in session.layer_ratios.items()},
        )  # fmt: skip
        model.zero_grad(set_to_none=True)
        sparsity = overall_sparsity(session.layers)
        console.print(f"step {step}: {sparsity:.4f} of the pruned layers' weights are zero")
        return {"sparsity": sparsity}

    return iterative_prune(
        model, targets=session.targets, prune_step=prune_step, fine_tune=session.fine_tune,
        evaluate=session.evaluate, snapshot=lambda: make_permanent(copy.deepcopy(model)),
        max_allowed_loss=settings.max_allowed_loss,
    )  # fmt: skip


def run_sensitivity(session: Session) -> dict[str, dict[float, float]]:
    """Each layer pruned alone at each of settings.sensitivity_ratios: validation accuracy."""
    settings = session.settings
    ratios = [float(r) for r in settings.sensitivity_ratios]
    names = list(session.layers)
    console.print(f"sensitivity: {len(names)} layers x {len(ratios)} ratios")
    if settings.method == "structured":

        def prune_one(model: torch.nn.Module, name: str, ratio: float) -> None:
            session.gradients_if_needed(model)  # the copy's own gradients, for taylor
            with compression_step("the per-layer pruning sensitivity", "prune.sensitivity=false"):
                prune_one_layer(model, name, ratio, session.importance, session.example,
                                session.ignored)  # fmt: skip
    else:

        def prune_one(model: torch.nn.Module, name: str, ratio: float) -> None:
            session.gradients_if_needed(model)
            layer = {name: model.get_submodule(name)}
            prune_unstructured(layer, ratio, criterion=session.criterion, scope="layer")

    return sensitivity(
        session.model, names, ratios, prune_one=prune_one,
        evaluate=lambda m: session.evaluate(m, test=False),
    )  # fmt: skip


def save_pruned(
    path: Path, session: Session, *, checkpoint: dict[str, Any], parent: Path,
    model: torch.nn.Module, metrics: dict[str, Any], config: dict[str, Any],
) -> Path:  # fmt: skip
    """The pruned model as a kta checkpoint; `config` is this prune run's composed config."""
    settings = session.settings
    metadata = checkpoint_metadata(
        command="prune",
        model_args=dict(checkpoint["model_args"]),
        data=checkpoint["data"],
        class_names=checkpoint.get("class_names") or session.data.class_names,
        config={  # the data it was fine-tuned on; the rest as the parent composed it
            **checkpoint.get("config", {}),
            "data": spec_as_dict(session.data.spec),
            "prune": config,
        },
        parent=parent,
    )
    return save_checkpoint(path, {
        **metadata,
        "model_kind": "pruned",
        "model": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))},
        "pruning": {
            "method": settings.method,
            "importance": session.criterion,
            "ratio": float(settings.ratio),
            "conv_groups": conv_groups_of(model),
            "num_heads": attention_heads_of(model),
        },
    })  # fmt: skip
