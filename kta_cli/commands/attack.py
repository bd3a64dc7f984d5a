"""`kta attack ckpt=... [compare=a,b]`: accuracy under FGSM / PGD at each epsilon and under noise,
an examples grid, metrics.json and TensorBoard. Library code: kta_cli/robustness/."""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from kta_cli.data.datasets import build_data, spec_from_dict
from kta_cli.data.loaders import collect
from kta_cli.engine.checkpoint import resolve_checkpoint
from kta_cli.engine.evaluate import scored_data
from kta_cli.engine.runtime import resolve_device
from kta_cli.engine.state import seed_everything
from kta_cli.errors import KtaError
from kta_cli.report.figures import save_figure
from kta_cli.report.reporter import TensorBoard, console
from kta_cli.report.run_folder import current_run_dir, mark_latest, write_metrics
from kta_cli.robustness.attacks import Attack, to_pixels
from kta_cli.robustness.evaluate import Victim
from kta_cli.robustness.report import curves_figure, curves_table, noise_figure, noise_table
from kta_cli.robustness.run import evaluate_victim, example_grid, flat_metrics
from kta_cli.robustness.victims import load_victim, unique_labels
from kta_cli.schema.robustness import parse_eps_list


def build_attacks(cfg: DictConfig) -> dict[str, list[Attack]]:
    """method -> its attacks at rising radii (L2 methods take attack.l2_eps)."""
    settings = cfg.attack
    attacks = {}
    for method in settings.methods:
        key = "l2_eps" if method == "pgd_l2" else "eps"
        radii = parse_eps_list(OmegaConf.to_container(settings[key]), f"attack.{key}")
        attacks[method] = [
            Attack(method, eps, settings.steps, settings.step_size, settings.random_start)
            for eps in radii
        ]
    return attacks


def target_index(target: Any, class_names: list[str]) -> int | None:
    """attack.target as a class index: an index, or a class name."""
    if target is None:
        return None
    if isinstance(target, int) and not isinstance(target, bool) and 0 <= target < len(class_names):
        return target
    if str(target) in class_names:
        return class_names.index(str(target))
    if str(target).isdigit() and int(target) < len(class_names):
        return int(target)
    raise KtaError(
        f"attack.target={target!r} is not a class of this model; use an index 0-"
        f"{len(class_names) - 1} or one of {', '.join(class_names[:10])}"
    )


def load_victims(cfg: DictConfig, device: torch.device) -> tuple[list[Victim], dict[str, Any]]:
    main, checkpoint = load_victim(cfg.ckpt, device)
    victims = [main]
    given = (
        cfg.compare if isinstance(cfg.compare, ListConfig) else str(cfg.compare or "").split(",")
    )
    for spec in [str(s).strip() for s in given if str(s).strip()]:
        victim, _ = load_victim(spec, device)
        if victim.num_classes != main.num_classes:
            raise KtaError(
                f"compare={spec} has {victim.num_classes} classes, ckpt={cfg.ckpt} has "
                f"{main.num_classes}; compare checkpoints of the same task"
            )
        victims.append(victim)
    unique_labels(victims)
    return victims, checkpoint


def run(cfg: DictConfig) -> dict[str, Any]:
    seed_everything(cfg.seed)
    if cfg.trainer.threads:
        torch.set_num_threads(cfg.trainer.threads)
    device = resolve_device(cfg.trainer.device)
    victims, checkpoint = load_victims(cfg, device)
    data = build_data(spec_from_dict(scored_data(cfg, checkpoint)))
    class_names = checkpoint.get("class_names") or data.class_names
    if len(data.class_names) != len(class_names):
        raise KtaError(
            f"the checkpoint has {len(class_names)} classes, the data {len(data.class_names)}; "
            "pick data.classes to match"
        )
    target = target_index(cfg.attack.target, class_names)
    attacks = build_attacks(cfg)
    normalized, labels = collect(getattr(data, cfg.split), cfg.images)
    recorded = checkpoint["data"]
    images = to_pixels(normalized, recorded["mean"], recorded["std"]).to(device)
    labels = labels.to(device)
    results = [
        evaluate_victim(
            victim,
            images,
            labels,
            attacks,
            list(cfg.noise.std),
            batch_size=cfg.batch_size,
            target=target,
            seed=cfg.seed,
        )
        for victim in victims
    ]
    run_dir = current_run_dir()
    tensorboard = TensorBoard(run_dir if cfg.logger.tensorboard else None)
    title = f"kta attack: accuracy on {data.spec.name} ({cfg.split}, {len(labels)} images)"
    figure = curves_figure(results)
    tensorboard.figure("attack/accuracy_vs_eps", figure)
    save_figure(figure, run_dir / "accuracy_vs_eps.png")
    if cfg.noise.std:
        figure = noise_figure(results)
        tensorboard.figure("attack/accuracy_vs_noise", figure)
        save_figure(figure, run_dir / "accuracy_vs_noise.png")
    if cfg.examples > 0:
        figure = example_grid(
            victims[0],
            images,
            labels,
            attacks,
            class_names,
            rows=cfg.examples,
            target=target,
            seed=cfg.seed,
        )
        if figure is not None:
            tensorboard.figure("attack/examples", figure)
            save_figure(figure, run_dir / "examples.png")
    metrics = {
        "checkpoint": str(resolve_checkpoint(cfg.ckpt)),
        "split": cfg.split,
        "images": len(labels),
        "target": None if target is None else class_names[target],
        **flat_metrics(results[0]),
        "models": results,
    }
    for result in results:
        for method, points in result["attacks"].items():
            for i, point in enumerate(points):
                tensorboard.scalars({f"attack/{result['label']}/{method}_acc": point["acc"]}, i)
    tensorboard.close()
    write_metrics(run_dir, {**metrics, "parent": str(cfg.ckpt)})
    mark_latest(run_dir, "attack")
    console.print(curves_table(results, f"{title}, L-inf eps", ("fgsm", "pgd")))
    if "pgd_l2" in attacks:
        console.print(curves_table(results, f"{title}, L2 eps", ("pgd_l2",)))
    if cfg.noise.std:
        console.print(noise_table(results))
    console.print(f"run folder: {run_dir}")
    return metrics
