"""The run folder every command writes: where it is, metrics.json, and the `latest` pointers."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


def current_run_dir() -> Path:
    """The folder Hydra made for this run (outputs/<command>/<timestamp>/)."""
    from hydra.core.hydra_config import HydraConfig

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def write_text_atomic(path: Path, text: str) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp_name, path)


def _plain(value: Any) -> Any:
    """JSON-safe: NaN and inf become null, tensors and numpy scalars become numbers."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_metrics(run_dir: Path, metrics: dict[str, Any]) -> Path:
    path = run_dir / "metrics.json"
    write_text_atomic(path, json.dumps(_plain(metrics), indent=2) + "\n")
    return path


EVENTS_PREFIX = "events.out.tfevents"  # TensorBoard's event files


def holds_events(path: Path) -> bool:
    if path.is_dir() and not path.is_symlink():
        return any(path.rglob(f"{EVENTS_PREFIX}*"))
    return path.name.startswith(EVENTS_PREFIX)


def mark_latest(run_dir: Path, command: str) -> None:
    """Point outputs/<command>/latest at this run folder, and outputs/latest too when the run
    made a model (so `ckpt=latest` still finds one after an eval or explain run).

    A pointer is a folder of relative links, one per entry of the run folder except TensorBoard's
    event files: `outputs/train/latest/best.ckpt`, `.../metrics.json` read as before, while
    `tensorboard --logdir outputs`, which follows links, finds no second copy of the run (a link
    to the whole folder listed every run two or three times). latest_run() names the real folder.
    Sweep runs sit deeper (outputs/<command>/<time>_sweep/<n>); the pointers still go to the
    folder named after the command and its parent.
    """
    run_dir = run_dir.resolve()
    command_dir = next((p for p in run_dir.parents if p.name == command), run_dir.parent)
    pointers = [command_dir / "latest"]
    if any(run_dir.glob("*.ckpt")):
        pointers.append(command_dir.parent / "latest")
    entries = [entry for entry in sorted(run_dir.iterdir()) if not holds_events(entry)]
    for pointer in pointers:
        try:
            replace_pointer(pointer, entries)
        except OSError:
            continue  # another run replaced it at the same moment: that one is the newest


def replace_pointer(pointer: Path, entries: list[Path]) -> None:
    """Build the links beside the pointer, then swap folders: two renames, so a reader sees the
    old pointer or the new one (for a moment none), never a half-built one."""
    fresh = pointer.with_name(f".latest.{os.getpid()}.new")
    stale = pointer.with_name(f".latest.{os.getpid()}.old")
    for leftover in (fresh, stale):
        remove_pointer(leftover)
    fresh.mkdir()
    try:
        for entry in entries:
            (fresh / entry.name).symlink_to(
                os.path.relpath(entry, pointer), target_is_directory=entry.is_dir()
            )
        if os.path.lexists(pointer):
            os.rename(pointer, stale)
        os.rename(fresh, pointer)
    finally:
        remove_pointer(fresh)
        remove_pointer(stale)


def remove_pointer(path: Path) -> None:
    """Delete a pointer, a link (as earlier kta wrote) or a folder of links; never a target."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)  # removes the links themselves; rmtree does not follow them


def latest_run(pointer: Path) -> Path:
    """The run folder a `latest` pointer names (a folder of links, or an older folder link)."""
    if pointer.is_symlink() or not pointer.is_dir():
        return pointer.resolve()
    for link in sorted(pointer.iterdir()):
        if link.is_symlink():
            return link.resolve().parent
    return pointer.resolve()


CHECKPOINT_NAMES = ("best.ckpt", "model.ckpt", "last.ckpt")  # the one a run folder stands for


def run_checkpoint(run_dir: Path) -> Path | None:
    return next((run_dir / n for n in CHECKPOINT_NAMES if (run_dir / n).is_file()), None)


def model_runs(outputs: Path) -> list[Path]:
    """Every run folder under `outputs` that holds a checkpoint, newest first.

    Newest: outputs/latest's run first (the last run that made a model, as mark_latest saw it),
    then the others by the time their checkpoint was last written (a run writes last.ckpt or
    model.ckpt as it ends). Pointers and hidden folders are skipped: they only repeat a run.
    """
    found: dict[Path, float] = {}
    for checkpoint in outputs.rglob("*.ckpt"):
        parts = checkpoint.relative_to(outputs).parts
        if any(part == "latest" or part.startswith(".") for part in parts):
            continue
        run_dir = checkpoint.parent.resolve()
        found[run_dir] = max(found.get(run_dir, 0.0), checkpoint.stat().st_mtime)
    ordered = sorted(found, key=lambda run: found[run], reverse=True)
    pointer = outputs / "latest"
    if os.path.lexists(pointer):
        newest = latest_run(pointer)
        ordered = [newest] + [run for run in ordered if run != newest]
    return [run for run in ordered if run_checkpoint(run) is not None]


def config_as_dict(cfg: Any) -> dict[str, Any]:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
