"""`kta prune ckpt=... prune.method=... prune.ratio=...`: prune, fine-tune, measure, save.

The only module that reads the config: it builds the pieces in kta_cli/compress/prune_* and
hands them plain arguments.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from kta_cli.commands.eval import data_spec_for
from kta_cli.compress import prune_report as report
from kta_cli.compress.prune_layers import layers_to_prune, resolve_ignored, resolve_layer_ratios
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
from kta_cli.compress.prune_unstructured import (
    UNSTRUCTURED_CRITERIA,
    make_permanent,
    overall_sparsity,
    prune_unstructured,
)
from kta_cli.compress.pruned import conv_groups_of
from kta_cli.data.datasets import build_data, spec_as_dict, spec_from_dict
from kta_cli.engine.checkpoint import git_commit, load_checkpoint, resolve_checkpoint
from kta_cli.engine.checkpoint import save_checkpoint as write_checkpoint
from kta_cli.engine.finetune import fine_tune
from kta_cli.engine.loop import evaluate
from kta_cli.engine.runtime import resolve_device
from kta_cli.engine.state import seed_everything
from kta_cli.engine.tasks import ClassificationTask
from kta_cli.errors import KtaError
from kta_cli.loading import model_from_checkpoint
from kta_cli.report.measure import file_bytes, interleaved_latency_ms
from kta_cli.report.reporter import TensorBoard, console, print_table
from kta_cli.report.run_folder import config_as_dict, current_run_dir, mark_latest, write_metrics

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
    path = resolve_checkpoint(cfg.ckpt)
    checkpoint = load_checkpoint(path)
    if checkpoint.get("model_kind", "timm") not in ("timm", "pruned"):
        raise KtaError(
            f"{path} holds a {checkpoint['model_kind']} model; prune the float checkpoint "
            "it came from, then quantize the pruned one"
        )
    model = model_from_checkpoint(checkpoint)
    selection = select_layers(cfg, model)  # name mistakes surface before the data is built
    data = build_data(spec_from_dict(data_spec_for(cfg, checkpoint)))
    if len(data.class_names) != checkpoint["model_args"]["num_classes"]:
        raise KtaError(
            f"the checkpoint has {checkpoint['model_args']['num_classes']} classes, the data "
            f"{len(data.class_names)}; pick data.classes to match"
        )
    return prune_and_report(cfg, checkpoint, path, model, data, device, selection)


def select_layers(cfg: DictConfig, model: torch.nn.Module) -> tuple[list[str], dict[str, float]]:
    """(ignored layer names, {layer: own ratio}) from prune.ignore and prune.layer_ratios."""
    ignore = cfg.prune.ignore or []
    ignored = resolve_ignored(model, [ignore] if isinstance(ignore, str) else list(ignore))
    layer_ratios = resolve_layer_ratios(model, layer_ratios_of(cfg), ignored)
    layers_to_prune(model, ignored)
    return ignored, layer_ratios


class Session:
    """The model being pruned, its data and the measurements every stage shares."""

    def __init__(
        self, cfg: DictConfig, model: torch.nn.Module, name: str, data: Any, device: Any,
        selection: tuple[list[str], dict[str, float]],
    ) -> None:  # fmt: skip
        self.cfg, self.model, self.model_name = cfg, model, name
        self.data, self.device = data, device
        size = data.spec.img_size
        self.example = torch.randn(1, 3, size, size, device=device)
        self.ignored, self.layer_ratios = selection
        self.layers = layers_to_prune(model, self.ignored)
        self.criterion = cfg.importance.name
        self.importance = instantiate(cfg.importance.criterion)
        self.targets = schedule_ratios(cfg.prune.ratio, cfg.prune.steps, cfg.prune.schedule)

    def evaluate(self, model: torch.nn.Module | None = None, test: bool = True) -> dict[str, float]:
        task = ClassificationTask((model or self.model).to(self.device))
        values = evaluate(task, self.data.val, device=self.device)
        if test:
            tested = evaluate(task, self.data.test, device=self.device)
            values.update(test_loss=tested["loss"], test_acc=tested["acc"])
        return values

    def gradients_if_needed(self, model: torch.nn.Module) -> None:
        if self.cfg.importance.gradients:
            self.data.train.set_epoch(0, 0)
            count = self.cfg.importance.get("batches", 4)
            accumulate_gradients(model, iter(self.data.train), count, self.device)

    def fine_tune(self, step: int) -> bool:
        ft = self.cfg.finetune
        if ft.epochs == 0:
            return False
        console.print(f"step {step}: fine-tuning {ft.epochs} epoch(s)")
        fine_tune(
            self.model, self.data.train, self.data.val, epochs=ft.epochs, lr=ft.lr,
            optimizer=ft.optimizer, weight_decay=ft.weight_decay, schedule=ft.schedule,
            device=str(self.device), progress=bool(self.cfg.trainer.progress),
        )  # fmt: skip
        return True

    def step_ratio(self, layer_ratio: float, step: int) -> float:
        return schedule_ratios(layer_ratio, self.cfg.prune.steps, self.cfg.prune.schedule)[step]


def run_structured(session: Session) -> IterativeResult:
    cfg, model = session.cfg, session.model
    macs0, params0 = count_macs_and_params(model, session.example)
    pruner = StructuredPruner(
        model, session.example, session.importance, ratio=cfg.prune.ratio,
        steps=cfg.prune.steps, schedule=cfg.prune.schedule, scope=cfg.prune.scope,
        layer_ratios=session.layer_ratios, ignored=session.ignored,
        max_layer_ratio=cfg.prune.max_layer_ratio, round_to=cfg.prune.round_to,
    )  # fmt: skip

    def prune_step(step: int) -> dict[str, Any]:
        session.gradients_if_needed(model)
        pruner.step()
        model.zero_grad(set_to_none=True)
        check_forward(model, session.example, session.model_name)
        macs, params = count_macs_and_params(model, session.example)
        console.print(f"step {step}: {params0} -> {params} parameters, {macs0} -> {macs} MACs")
        return {"sparsity": 1 - params / params0, "params": params, "macs": macs}

    return iterative_prune(
        model, targets=session.targets, prune_step=prune_step, fine_tune=session.fine_tune,
        evaluate=session.evaluate, snapshot=lambda: copy.deepcopy(model),
        max_allowed_loss=cfg.prune.max_allowed_loss,
    )  # fmt: skip


def run_unstructured(session: Session) -> IterativeResult:
    cfg, model = session.cfg, session.model

    def prune_step(step: int) -> dict[str, Any]:
        make_permanent(model)
        session.gradients_if_needed(model)
        prune_unstructured(
            session.layers, session.targets[step], criterion=session.criterion,
            scope=cfg.prune.scope,
            layer_ratios={n: session.step_ratio(r, step) for n, r in session.layer_ratios.items()},
        )  # fmt: skip
        model.zero_grad(set_to_none=True)
        sparsity = overall_sparsity(session.layers)
        console.print(f"step {step}: {sparsity:.4f} of the pruned layers' weights are zero")
        return {"sparsity": sparsity}

    return iterative_prune(
        model, targets=session.targets, prune_step=prune_step, fine_tune=session.fine_tune,
        evaluate=session.evaluate, snapshot=lambda: make_permanent(copy.deepcopy(model)),
        max_allowed_loss=cfg.prune.max_allowed_loss,
    )  # fmt: skip


def run_sensitivity(session: Session, baseline: float) -> dict[str, dict[float, float]]:
    cfg = session.cfg
    ratios = [float(r) for r in cfg.prune.sensitivity_ratios]
    names = list(session.layers)
    console.print(f"sensitivity: {len(names)} layers x {len(ratios)} ratios")
    if cfg.prune.method == "structured":

        def prune_one(model: torch.nn.Module, name: str, ratio: float) -> None:
            session.gradients_if_needed(model)  # the copy's own gradients, for taylor
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


def measure_latency(
    session: Session, original: torch.nn.Module, pruned: torch.nn.Module
) -> dict[str, float]:
    cfg = session.cfg.measure
    size = session.data.spec.img_size
    example = torch.randn(cfg.batch_size, 3, size, size)
    runs = {"input": original.cpu().eval(), "pruned": pruned.cpu().eval()}
    latency = interleaved_latency_ms(runs, example, rounds=cfg.rounds)
    return {
        "latency_ms_before": latency["input"],
        "latency_ms_after": latency["pruned"],
        "latency_ratio": latency["pruned"] / latency["input"],
    }


def save_pruned(
    session: Session, checkpoint: dict[str, Any], parent: Any, model: torch.nn.Module,
    metrics: dict[str, Any],
) -> Any:  # fmt: skip
    cfg = session.cfg
    path = current_run_dir() / "model.ckpt"
    write_checkpoint(path, {
        "model_kind": "pruned",
        "model": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "model_args": dict(checkpoint["model_args"]),
        "data": checkpoint["data"],
        "class_names": checkpoint.get("class_names") or session.data.class_names,
        "config": {  # the data it was fine-tuned on; the rest as the parent composed it
            **checkpoint.get("config", {}),
            "data": spec_as_dict(session.data.spec),
            "prune": config_as_dict(cfg),
        },
        "parent": str(parent),
        "command": "prune",
        "git_commit": git_commit(),
        "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))},
        "pruning": {
            "method": cfg.prune.method,
            "importance": session.criterion,
            "ratio": float(cfg.prune.ratio),
            "conv_groups": conv_groups_of(model),
        },
    })  # fmt: skip
    return path


def prune_and_report(
    cfg: DictConfig, checkpoint: dict[str, Any], path: Any, model: torch.nn.Module, data: Any,
    device: Any, selection: tuple[list[str], dict[str, float]],
) -> dict[str, Any]:  # fmt: skip
    name = checkpoint["model_args"]["name"]
    session = Session(cfg, model.to(device), name, data, device, selection)
    run_dir = current_run_dir()
    tensorboard = TensorBoard(run_dir if cfg.logger.tensorboard else None)
    start = session.evaluate()
    before = report.size_figures(
        model, count_macs_and_params(model.cpu(), session.example.cpu())[0]
    )
    model.to(device)
    tables, figures = [], {}
    sensitivity_rows = None
    if cfg.prune.sensitivity:
        sensitivity_rows = run_sensitivity(session, start["acc"])
        tables.append(report.sensitivity_table(sensitivity_rows, start["acc"]))
        figures["sensitivity"] = report.sensitivity_figure(sensitivity_rows, start["acc"])
    runner = run_structured if cfg.prune.method == "structured" else run_unstructured
    result = runner(session)
    pruned = result.model.cpu().eval()
    original = model_from_checkpoint(checkpoint).eval()
    after = report.size_figures(pruned, count_macs_and_params(pruned, session.example.cpu())[0])
    metrics = summary_metrics(session, path, result, start, before, after)
    if cfg.measure.latency:
        metrics.update(measure_latency(session, original, pruned))
    for record in result.records:
        values = {f"{k}_pruned": v for k, v in record.pruned.items()}
        values.update({f"{k}_tuned": v for k, v in record.tuned.items()})
        tensorboard.scalars({**values, "sparsity": record.sparsity}, record.step, prefix="prune/")
    xlabel = "weight sparsity" if cfg.prune.method == "unstructured" else "parameters removed"
    figures["accuracy_vs_sparsity"] = report.accuracy_vs_sparsity_figure(
        start, result.records, xlabel
    )
    report.save_figures(run_dir, figures, tensorboard)
    tensorboard.close()
    saved = save_pruned(session, checkpoint, path, pruned, metrics)
    metrics["file_bytes_before"], metrics["file_bytes_after"] = file_bytes(path), file_bytes(saved)
    layers = report.layer_rows(cfg.prune.method, list(session.layers), original, pruned)
    full = {**metrics, "layers": layers, "steps": [vars(r) for r in result.records]}
    if sensitivity_rows is not None:
        full["sensitivity"] = {n: {str(r): a for r, a in row.items()} for n, row in
                               sensitivity_rows.items()}  # fmt: skip
    write_metrics(run_dir, full)
    mark_latest(run_dir, "prune")
    columns = ("sparsity",) if cfg.prune.method == "unstructured" else ("channels before", "after")
    tables += [
        report.steps_table(result.records, result.best_step),
        report.layers_table("layers", layers, columns),
    ]
    report.print_tables(*tables)
    print_table(f"kta prune: {name} ({cfg.prune.method}, {session.criterion})", metrics)
    if result.best_step == 0:
        console.print("[yellow]no step met prune.max_allowed_loss: saved the input, unpruned")
    console.print(f"run folder: {run_dir}")
    return metrics


def summary_metrics(
    session: Session, path: Any, result: IterativeResult, start: dict[str, float],
    before: dict[str, int], after: dict[str, int],
) -> dict[str, Any]:  # fmt: skip
    cfg = session.cfg
    metrics: dict[str, Any] = {
        "checkpoint": str(path),
        "method": cfg.prune.method,
        "importance": session.criterion,
        "ratio": float(cfg.prune.ratio),
        "steps_run": len(result.records),
        "kept_step": result.best_step,
        "stopped_on_max_loss": result.stopped_early,
    }
    return {**metrics, **report.outcome_metrics(result, start, before, after)}
