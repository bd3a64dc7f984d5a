"""The chain a checkpoint came from (train -> distill -> prune -> quantize -> ...), followed
through each run folder's parent pointer, with each step's key figures side by side.

Every command names its input: metrics.json's `parent` (distill: the teacher; eval, explain,
attack, ...), `checkpoint` (prune, quantize), or for `kta train` the saved config's
trainer.resume or model.checkpoint (a fine-tuning). Those paths point at checkpoints; the
checkpoint's folder is the parent run. Only JSON and YAML are read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kta_cli.errors import KtaError
from kta_cli.ledger.groups import is_number
from kta_cli.ledger.runs import RunRecord, read_run, relative
from kta_cli.report.run_folder import latest_run, run_checkpoint

# Each figure: the first of these metrics.json keys a step has.
KEY_FIGURES: dict[str, tuple[str, ...]] = {
    "accuracy": ("test_acc", "acc_after", "test_acc_after_finetune", "acc"),
    "parameters": ("params_after", "parameters", "student_parameters"),
    "latency_ms": ("int8_latency_ms_batch1", "latency_ms_after"),
}
MAX_STEPS = 100  # a chain longer than this is a loop of pointers


@dataclass
class Step:
    record: RunRecord
    figures: dict[str, float | None]
    parent: str | None  # the pointer as written
    missing_parent: bool = False  # the pointer names a folder that is gone


def parent_pointer(record: RunRecord) -> str | None:
    for key in ("parent", "checkpoint"):
        value = record.metrics.get(key)
        if isinstance(value, str) and value:
            return value
    trainer, model = record.config.get("trainer"), record.config.get("model")
    resumed = trainer.get("resume") if isinstance(trainer, dict) else None
    if isinstance(resumed, str) and resumed not in ("", "auto"):  # auto: no longer knowable
        return resumed  # a resumed run continues the stopped one
    checkpoint = model.get("checkpoint") if isinstance(model, dict) else None
    return checkpoint if isinstance(checkpoint, str) and checkpoint else None


def run_folder_of(pointer: str) -> Path | None:
    """The run folder a checkpoint path, run folder or `latest` names; None when it is gone."""
    path = Path("outputs/latest") if pointer == "latest" else Path(pointer)
    if path.is_file():
        path = path.resolve().parent  # through a `latest` pointer's link to the real folder
    if not path.is_dir():
        return None
    if (path / "metrics.json").is_symlink():
        path = latest_run(path)
    return path.resolve()


def figures_of(record: RunRecord) -> dict[str, float | None]:
    found: dict[str, float | None] = {}
    for figure, keys in KEY_FIGURES.items():
        found[figure] = next(
            (record.metrics[k] for k in keys if is_number(record.metrics.get(k))), None
        )
    checkpoint = run_checkpoint(record.path)
    found["checkpoint_bytes"] = checkpoint.stat().st_size if checkpoint else None
    return found


def lineage(start: str) -> list[Step]:
    """Oldest step first; the last step is `start`."""
    folder = run_folder_of(start)
    if folder is None or not (folder / "metrics.json").is_file():
        raise KtaError(f"lineage={start}: not a run folder or checkpoint with a metrics.json")
    steps: list[Step] = []
    seen: set[Path] = set()
    while folder is not None and folder not in seen and len(steps) < MAX_STEPS:
        seen.add(folder)
        record = read_run(folder)
        pointer = parent_pointer(record)
        folder = run_folder_of(pointer) if pointer else None
        if folder is not None and not (folder / "metrics.json").is_file():
            folder = None  # a checkpoint made outside kta: the chain starts here
        gone = pointer is not None and run_folder_of(pointer) is None
        steps.append(Step(record, figures_of(record), pointer, missing_parent=gone))
    return steps[::-1]


def as_rows(steps: list[Step]) -> list[dict[str, Any]]:
    return [
        {"step": i, "command": s.record.command, "run": relative(s.record.path),
         **s.figures, "parent": s.parent, "parent_missing": s.missing_parent}
        for i, s in enumerate(steps, start=1)
    ]  # fmt: skip
