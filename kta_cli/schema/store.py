"""Register every schema in Hydra's ConfigStore, and the one validation step after composing.

Group presets name their schema in their defaults list (`- data_schema`); a command's primary
config names `schema_<command>` first. Composing then refuses a wrong type or an unknown key;
`validate` refuses a missing value or one outside its field's rule.
"""

from __future__ import annotations

from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from kta_cli.data.spec import DataSpec
from kta_cli.errors import KtaError
from kta_cli.schema import groups
from kta_cli.schema.adaptation import AdaptSchema, DannTaskConfig
from kta_cli.schema.checks import check_fields
from kta_cli.schema.commands import (
    DistillSchema,
    EvalSchema,
    PruneSchema,
    QuantizeSchema,
    TrainSchema,
)
from kta_cli.schema.continual import ContinualSchema, ScenarioConfig
from kta_cli.schema.explain import ExplainSchema
from kta_cli.schema.export import ExportSchema
from kta_cli.schema.fewshot import EmbedSchema, FewshotSchema
from kta_cli.schema.ledger import CompareSchema
from kta_cli.schema.robustness import AdversarialTaskConfig, AttackSchema
from kta_cli.schema.sweep import SweepOptions, SweepSchema

GROUP_SCHEMAS: dict[str, dict[str, type]] = {
    "data": {"data_schema": DataSpec},
    "model": {"model_schema": groups.ModelConfig},
    "teacher": {"teacher_schema": groups.TeacherConfig},
    "optim": {"optim_schema": groups.OptimConfig},
    "sched": {"sched_schema": groups.SchedConfig},
    "trainer": {"trainer_schema": groups.TrainerConfig},
    "logger": {"logger_schema": groups.LoggerConfig},
    "task": {
        "task_schema": groups.TaskConfig,
        "simclr_task_schema": groups.SimCLRConfig,
        "adversarial_task_schema": AdversarialTaskConfig,
        "dann_schema": DannTaskConfig,
    },
    "importance": {"importance_schema": groups.ImportanceConfig},
    "strategy": groups.STRATEGY_SCHEMAS,
    "scenario": {"scenario_schema": ScenarioConfig},
    "sweep": {"sweep_schema": SweepOptions},
}
COMMAND_SCHEMAS: dict[str, type] = {
    "train": TrainSchema,
    "eval": EvalSchema,
    "distill": DistillSchema,
    "prune": PruneSchema,
    "quantize": QuantizeSchema,
    "explain": ExplainSchema,
    "fewshot": FewshotSchema,
    "embed": EmbedSchema,
    "attack": AttackSchema,
    "adapt": AdaptSchema,
    "continual": ContinualSchema,
    "export": ExportSchema,
    "compare": CompareSchema,
    "sweep": SweepSchema,
}
_registered = False


def register() -> None:
    """Put the schemas in the ConfigStore once per process (before anything composes)."""
    global _registered
    if _registered:
        return
    store = ConfigStore.instance()
    for group, schemas in GROUP_SCHEMAS.items():
        for name, node in schemas.items():
            store.store(group=group, name=name, node=node)
    for command, node in COMMAND_SCHEMAS.items():
        store.store(name=f"schema_{command}", node=node)
    _registered = True


def validate(cfg: DictConfig) -> Any:
    """The composed config as typed objects; KtaError for a missing or out-of-range value."""
    missing = sorted(OmegaConf.missing_keys(cfg))  # to_object would quietly use the default
    if missing:
        raise KtaError(f"{missing[0]} must be set, e.g. {missing[0]}=<value>")
    typed = OmegaConf.to_object(cfg)
    check_fields(typed)
    return typed


def section(cfg: DictConfig, key: str) -> dict[str, Any]:
    """One composed section as a plain dict (already validated), for typed settings' **kwargs."""
    return OmegaConf.to_container(OmegaConf.select(cfg, key), resolve=True)
