"""What a sweep runs: the study (created or continued in its storage) and the plan, from the
typed sweep options, the parsed space and the searched command's fixed overrides."""

from __future__ import annotations

from math import prod
from pathlib import Path
from typing import Any

import optuna
from omegaconf import OmegaConf

from kta_cli.sweep.space import Param
from kta_cli.sweep.study import load_study, make_pruner, make_sampler, open_storage
from kta_cli.sweep.trials import SweepPlan


def study_and_plan(
    command: str, fixed: list[str], options: Any, space: list[Param], space_name: str
) -> tuple[optuna.Study, SweepPlan]:
    """`options`: the `sweep` section (kta_cli/schema/sweep.py). The study is named
    `<command>-<space>` and kept in outputs/sweep/<name> unless the options say otherwise."""
    name = options.name or f"{command}-{space_name}"
    folder = Path(options.dir or Path("outputs") / "sweep" / name)
    budget = options.trials
    if options.sampler == "grid":  # every point once; more trials would repeat points
        budget = min(budget, prod(len(p.grid()) for p in space))
    study = load_study(
        storage=open_storage(options.storage, folder),
        name=name,
        direction=options.direction,
        sampler=make_sampler(options.sampler, options.seed, space),
        pruner=make_pruner(
            options.pruner, startup=options.pruner_startup, warmup=options.pruner_warmup
        ),
        provenance={
            "command": command,
            "fixed": fixed,
            "metric": options.metric,
            "space": OmegaConf.to_container(OmegaConf.create(options.params)),
        },
    )
    plan = SweepPlan(
        command=command,
        fixed=fixed,
        space=space,
        metric=options.metric,
        budget=budget,
        timeout=options.timeout,
        sampler=options.sampler,
        seed=options.seed,
        folder=folder,
    )
    return study, plan
