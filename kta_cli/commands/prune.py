"""`kta prune ckpt=... prune.method=... prune.ratio=...`: prune, fine-tune, measure, save.

The only module that reads the config: it builds typed settings for kta_cli/compress/prune_run.py
(the pruning loops) and prune_report.py (measure, save, report).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from kta_cli.compress.prune_layers import layers_to_prune, resolve_ignored, resolve_layer_ratios
from kta_cli.compress.prune_report import LatencySettings, prune_and_report
from kta_cli.compress.prune_run import FineTuneSettings, PruneSettings, Session
from kta_cli.compress.prune_unstructured import UNSTRUCTURED_CRITERIA
from kta_cli.data.datasets import build_data, spec_from_dict
from kta_cli.engine.checkpoint import float_only, load_checkpoint, resolve_checkpoint
from kta_cli.engine.evaluate import scored_data
from kta_cli.engine.runtime import resolve_device
from kta_cli.engine.state import seed_everything
from kta_cli.errors import KtaError
from kta_cli.loading import model_from_checkpoint
from kta_cli.report.run_folder import config_as_dict, current_run_dir
from kta_cli.schema.store import section

log = logging.getLogger(__name__)
METHODS = ("structured", "unstructured")


def validate(cfg: DictConfig) -> None:
    method = cfg.prune.method
    if method == "unstructured" and cfg.importance.name not in UNSTRUCTURED_CRITERIA:
        raise KtaError(
            f"importance={cfg.importance.name} ranks whole channels; with "
            f"prune.method=unstructured use importance={'|'.join(UNSTRUCTURED_CRITERIA)}"
        )


def layer_ratios_of(cfg: DictConfig) -> dict[str, Any]:
    ratios = cfg.prune.layer_ratios
    if ratios is None:
        return {}
    if not isinstance(ratios, DictConfig):
        raise KtaError(f"prune.layer_ratios must be a mapping like {{layer4: 0.7}}, got {ratios!r}")
    return OmegaConf.to_container(ratios, resolve=True)  # type: ignore[return-value]


def run(cfg: DictConfig) -> dict[str, Any]:
    validate(cfg)
    seed_everything(cfg.seed)
    if cfg.trainer.threads:
        torch.set_num_threads(cfg.trainer.threads)
    device = resolve_device(cfg.trainer.device)
    path = resolve_checkpoint(cfg.ckpt, usable=float_only)  # latest: newest float model
    checkpoint = load_checkpoint(path)
    if checkpoint.get("model_kind", "timm") not in ("timm", "pruned"):
        raise KtaError(
            f"{path} holds a {checkpoint['model_kind']} model; prune the float checkpoint "
            "it came from, then quantize the pruned one"
        )
    model = model_from_checkpoint(checkpoint)
    selection = select_layers(cfg, model)  # name mistakes surface before the data is built
    data = build_data(spec_from_dict(scored_data(cfg, checkpoint)))
    if len(data.class_names) != checkpoint["model_args"]["num_classes"]:
        raise KtaError(
            f"the checkpoint has {checkpoint['model_args']['num_classes']} classes, the data "
            f"{len(data.class_names)}; pick data.classes to match"
        )
    session = Session(
        model.to(device), checkpoint["model_args"]["name"], data, device,
        settings=prune_settings(cfg), finetune=finetune_settings(cfg), selection=selection,
    )  # fmt: skip
    return prune_and_report(
        session, checkpoint=checkpoint, path=path,
        load_original=lambda: model_from_checkpoint(checkpoint), run_dir=current_run_dir(),
        config=config_as_dict(cfg), latency=LatencySettings(**section(cfg, "measure")),
        tensorboard=bool(cfg.logger.tensorboard), with_sensitivity=bool(cfg.prune.sensitivity),
    )  # fmt: skip


def prune_settings(cfg: DictConfig) -> PruneSettings:
    p, importance = cfg.prune, cfg.importance
    return PruneSettings(
        method=p.method, ratio=float(p.ratio), scope=p.scope, steps=p.steps,
        schedule=p.schedule, max_layer_ratio=float(p.max_layer_ratio), round_to=p.round_to,
        attention=p.attention,
        max_allowed_loss=p.max_allowed_loss,
        sensitivity_ratios=[float(r) for r in p.sensitivity_ratios],
        criterion=importance.name, importance=instantiate(importance.criterion),
        gradients=bool(importance.gradients), gradient_batches=importance.get("batches", 4),
    )  # fmt: skip


def finetune_settings(cfg: DictConfig) -> FineTuneSettings:
    ft = cfg.finetune
    return FineTuneSettings(
        epochs=ft.epochs, lr=ft.lr, optimizer=ft.optimizer, weight_decay=ft.weight_decay,
        schedule=ft.schedule, progress=bool(cfg.trainer.progress),
    )  # fmt: skip


def select_layers(cfg: DictConfig, model: torch.nn.Module) -> tuple[list[str], dict[str, float]]:
    """(ignored layer names, {layer: own ratio}) from prune.ignore and prune.layer_ratios."""
    ignore = cfg.prune.ignore or []
    ignored = resolve_ignored(model, [ignore] if isinstance(ignore, str) else list(ignore))
    layer_ratios = resolve_layer_ratios(model, layer_ratios_of(cfg), ignored)
    layers_to_prune(model, ignored)
    return ignored, layer_ratios
