"""`kta continual`: build the scenario, the model and the method's task; the runner trains the
steps through the run builder; this writes the scenario folder's matrix, scores and figures."""

from __future__ import annotations

from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from kta_cli.continual.buffer import ReplayBuffer
from kta_cli.continual.methods import build_method
from kta_cli.continual.report import accuracy_over_steps_figure, matrix_figure
from kta_cli.continual.runner import ContinualSetup, run_scenario
from kta_cli.continual.scenarios import Scenario, class_split, style_sequence
from kta_cli.data.datasets import spec_as_dict, spec_from_dict
from kta_cli.engine.runtime import Runtime, run_in_runtime, shared_run_dir
from kta_cli.engine.settings import RunSettings
from kta_cli.engine.state import seed_everything
from kta_cli.errors import KtaError
from kta_cli.loading import build_model
from kta_cli.report.figures import save_figure
from kta_cli.report.reporter import TensorBoard, console, print_table
from kta_cli.report.run_folder import config_as_dict, mark_latest, write_metrics
from kta_cli.schema.continual import method_options
from kta_cli.schema.store import section


def run(cfg: DictConfig) -> dict[str, Any]:
    return run_in_runtime(
        "continual",
        device=cfg.trainer.device,
        threads=cfg.trainer.threads,
        body=lambda runtime: continual(cfg, runtime),
    )


def data_choice() -> str | None:
    try:
        return HydraConfig.get().runtime.choices.get("data")
    except ValueError:  # composed outside a Hydra run (a library caller)
        return None


def build_scenario(cfg: DictConfig) -> Scenario:
    options = section(cfg, "scenario")
    chosen = data_choice()
    if chosen not in (None, "digits", options["data"]):  # digits: the preset every run starts from
        raise KtaError(
            f"scenario={options['name']} is built on {options['data']}; data={chosen} is not "
            "read (data.<key>=... sets sizes and splits)"
        )
    spec = spec_from_dict({**section(cfg, "data"), "name": options["data"]})
    if options["kind"] == "styles":
        return style_sequence(
            spec,
            name=options["name"],
            styles=list(options["styles"] or []),
            order=options["order"],
            seed=options["seed"],
        )
    return class_split(
        spec,
        name=options["name"],
        classes_per_task=options["classes_per_task"],
        tasks=options["tasks"],
        order=options["order"],
        seed=options["seed"],
        mode=options["mode"],
    )


def continual(cfg: DictConfig, runtime: Runtime) -> dict[str, Any]:
    if runtime.distributed:
        raise KtaError("kta continual runs in one process; start it without torchrun")
    method = method_options(section(cfg, "method"))
    settings = RunSettings.from_sections(
        section(cfg, "trainer"),
        section(cfg, "optim"),
        section(cfg, "sched"),
        device=runtime.device,
        tensorboard=bool(cfg.logger.tensorboard),
    )
    scenario_dir = shared_run_dir(runtime)
    seed_everything(cfg.seed)
    scenario = build_scenario(cfg)
    model = build_model(
        cfg.model.name,
        num_classes=scenario.num_classes,
        img_size=scenario.spec.img_size,
        pretrained=cfg.model.pretrained,
        checkpoint=cfg.model.checkpoint,
        drop_rate=cfg.model.drop_rate,
        init=cfg.model.init,
    ).to(runtime.device)
    buffer = None
    if method["name"] == "replay":
        buffer = ReplayBuffer(method["buffer_size"], method["buffer"], seed=cfg.seed)
    board = TensorBoard(scenario_dir if settings.tensorboard else None)
    setup = ContinualSetup(
        scenario_dir=scenario_dir,
        runtime=runtime,
        settings=settings,
        model_args={
            "name": cfg.model.name,
            "num_classes": scenario.num_classes,
            "img_size": scenario.spec.img_size,
        },
        # the data set as built (its name follows the scenario), so kta eval reads it back
        config={**config_as_dict(cfg), "data": spec_as_dict(scenario.spec)},
        joint=method["name"] == "joint",
        buffer=buffer,
        seed=cfg.seed,
        board=board,
    )
    task = build_method(method["name"], model, method)
    scores = run_scenario(scenario, task, model, setup)
    names = [t.name for t in scenario.tasks]
    metrics = {
        "scenario": scenario.name,
        "mode": scenario.mode,
        "method": method,
        "model": cfg.model.name,
        "tasks": names,
        "task_classes": [t.classes for t in scenario.tasks],
        "epochs_per_task": cfg.trainer.epochs,
        **scores,
    }
    write_figures(cfg, scores["accuracy_matrix"], names, scenario_dir, board)
    write_metrics(scenario_dir, metrics)
    board.close()
    mark_latest(scenario_dir, "continual")
    print_summary(metrics)
    console.print(f"scenario folder: {scenario_dir}")
    return metrics


def write_figures(
    cfg: DictConfig, matrix: list[list[float]], names: list[str], folder: Any, board: TensorBoard
) -> None:
    if not cfg.figures:
        return
    for tag, figure in (
        ("accuracy_matrix", matrix_figure(matrix, names)),
        ("accuracy_over_steps", accuracy_over_steps_figure(matrix, names)),
    ):
        board.figure(f"continual/{tag}", figure, len(matrix) - 1)  # before it is closed
        save_figure(figure, folder / f"{tag}.png")


def print_summary(metrics: dict[str, Any]) -> None:
    matrix = metrics["accuracy_matrix"]
    rows: dict[str, Any] = {
        f"after {i} ({metrics['tasks'][i]})": "  ".join(f"{a:.3f}" for a in row)
        for i, row in enumerate(matrix)
    }
    for key in ("average_accuracy", "forgetting", "backward_transfer"):
        value = metrics[key]
        rows[key] = "n/a (one task)" if value is None else f"{value:.4f}"
    print_table(
        f"kta continual: {metrics['method']['name']} on {metrics['scenario']} ({metrics['mode']})",
        rows,
    )
