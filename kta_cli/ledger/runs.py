"""Run folders as records: which folders a list of paths, sweep folders and globs names, and
what each one says (its command, the overrides it ran with, metrics.json, pruned or failed).

A run folder is any folder holding metrics.json (kta's run folders, a multirun's numbered jobs,
a sweep's trials) with no run folders below it (a sweep folder's own summary is no run).
Read with plain YAML/JSON: comparing runs loads no model and no torch.
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kta_cli.errors import KtaError
from kta_cli.report.run_folder import latest_run

# Keys that only pick a seed: runs differing in these alone are repeats of one experiment.
SEED_KEYS = frozenset({"seed", "data.seed"})
# What a sweep writes into a trial's metrics.json when it did not finish (status: pruned|failed).
EXCLUDED_STATUSES = ("pruned", "failed")
# Commands whose run folders summarise other runs: never inputs of a comparison themselves.
SUMMARY_COMMANDS = ("compare",)


@dataclass
class RunRecord:
    path: Path
    command: str
    overrides: list[str]  # as typed, or key=value from the saved config when none were saved
    metrics: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        status = self.metrics.get("status")
        if isinstance(status, str) and status in EXCLUDED_STATUSES:
            return status
        flagged = [s for s in EXCLUDED_STATUSES if self.metrics.get(s) is True]
        return flagged[0] if flagged else "ok"

    @property
    def seeds(self) -> dict[str, str]:
        pairs = (o.lstrip("+~").partition("=") for o in self.overrides)
        found = {key: value for key, _, value in pairs if key in SEED_KEYS}
        if "seed" not in found and isinstance(self.config.get("seed"), int):
            found["seed"] = str(self.config["seed"])  # the default seed, not typed
        return found

    @property
    def group_key(self) -> tuple[str, ...]:
        """The command and the sorted overrides, seed keys left out."""
        kept = sorted(
            o for o in self.overrides if o.lstrip("+~").partition("=")[0] not in SEED_KEYS
        )
        return (self.command, *kept)


def read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text()) if path.is_file() else None
    except (OSError, yaml.YAMLError):
        return None  # Hydra's own files: a broken one only loses what it would have told


def command_of(folder: Path, metrics: dict[str, Any]) -> str:
    """hydra.job.name (kta sets it to the command), else the folder under outputs/ it sits in."""
    hydra = read_yaml(folder / ".hydra" / "hydra.yaml") or {}
    name = (hydra.get("hydra") or {}).get("job", {}).get("name")
    if isinstance(name, str) and name:
        return name
    if isinstance(metrics.get("command"), str):
        return metrics["command"]
    parts = folder.resolve().parts
    return parts[parts.index("outputs") + 1] if "outputs" in parts[:-1] else "unknown"


def flat_items(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, dict):
        return [item for k, v in node.items() for item in flat_items(v, f"{prefix}{k}.")]
    return [f"{prefix[:-1]}={json.dumps(node)}"]


def read_run(folder: Path) -> RunRecord:
    path = folder / "metrics.json"
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise KtaError(f"cannot read {path}: {error}") from error
    if not isinstance(metrics, dict):
        raise KtaError(f"{path} is not a JSON object of metrics")
    config = read_yaml(folder / ".hydra" / "config.yaml") or {}
    overrides = read_yaml(folder / ".hydra" / "overrides.yaml")
    if not isinstance(overrides, list):  # no Hydra folder: the whole saved config stands in
        overrides = flat_items({k: v for k, v in config.items() if k != "hydra"})
    return RunRecord(folder, command_of(folder, metrics), [str(o) for o in overrides],
                     metrics, config if isinstance(config, dict) else {})  # fmt: skip


def runs_below(folder: Path) -> list[Path]:
    """Every run folder below `folder`, else `folder` itself when it holds metrics.json: a sweep
    folder's own summary stands for the trials below it. `latest` pointers and hidden folders
    only repeat runs (and .submitit holds a launcher's job files)."""
    found = []
    for metrics in sorted(folder.rglob("*/metrics.json")):
        parts = metrics.relative_to(folder).parts[:-1]
        if not any(part == "latest" or part.startswith(".") for part in parts):
            found.append(metrics.parent)
    return found or ([folder] if (folder / "metrics.json").is_file() else [])


def expand(specs: list[str]) -> list[Path]:
    """Run folders named by paths, `latest` pointers, sweep or multirun folders and globs, each
    once, in the order given."""
    if not specs:
        raise KtaError("nothing to compare: name run folders, sweep folders or globs, "
                       "e.g. kta compare 'outputs/train/*'")  # fmt: skip
    folders: dict[Path, None] = {}
    for spec in specs:
        matches = sorted(glob.glob(spec, recursive=True)) if glob.has_magic(spec) else [spec]
        if not matches:
            raise KtaError(f"{spec} matches nothing")
        for match in matches:
            path = Path(match)
            if path.is_file():  # metrics.json or a checkpoint: the run folder it sits in
                path = path.resolve().parent
            if not path.is_dir():
                raise KtaError(f"{match} is not a run folder (no such folder)")
            if (path / "metrics.json").is_symlink():  # a `latest` pointer: the run it names
                path = latest_run(path)
            found = runs_below(path.resolve())
            if not found and not glob.has_magic(spec):
                raise KtaError(f"{match} holds no metrics.json (not a finished kta run folder, "
                               "nor a sweep folder of them)")  # fmt: skip
            folders.update(dict.fromkeys(found))
    if not folders:
        raise KtaError(f"{', '.join(specs)}: no metrics.json in the folders matched")
    return list(folders)


def read_runs(specs: list[str]) -> list[RunRecord]:
    records = [read_run(folder) for folder in expand(specs)]
    return [r for r in records if r.command not in SUMMARY_COMMANDS]


def relative(path: Path) -> str:
    """A path as the user would type it from here (absolute when outside)."""
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)
