"""The run folder every command writes: where it is, metrics.json, the `latest` pointers, and
the one-line error a full disk gives."""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import logging
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kta_cli.errors import KtaError


def current_run_dir() -> Path:
    """The folder Hydra made for this run (outputs/<command>/<timestamp>/)."""
    from hydra.core.hydra_config import HydraConfig

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    stop_when_the_log_file_fills(run_dir)
    return run_dir


def stop_when_the_log_file_fills(run_dir: Path) -> None:
    """Python's logging prints a traceback for every record a full disk refuses and goes on;
    the run's log file (Hydra's <command>.log) stops the run with disk_full_error instead."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) and not hasattr(handler, "kta_run_dir"):
            handler.kta_run_dir = run_dir  # type: ignore[attr-defined]
            handler.handleError = functools.partial(_log_write_failed, handler)  # type: ignore


def _log_write_failed(handler: logging.FileHandler, record: logging.LogRecord) -> None:
    error = sys.exc_info()[1]
    if not is_disk_full(error):
        return logging.FileHandler.handleError(handler, record)
    needed = len(handler.format(record)) + 1
    raise disk_full_error(handler.baseFilename, needed, handler.kta_run_dir) from error  # type: ignore


# A full quota reads to the user like a full disk, and needs the same words.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def is_disk_full(error: BaseException | None) -> bool:
    """ENOSPC anywhere in the chain: torch's serializer raises a RuntimeError whose context is
    the OSError, TensorBoard's writer thread hands its OSError on to the next call."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in DISK_FULL:
            return True
        error = error.__cause__ or error.__context__
    return False


def human_size(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def disk_full_error(what: str, needed: int | str | None, run_dir: Path) -> KtaError:
    """One line: what could not be written, how big it was, what free space there is, and that
    the checkpoints written before are intact (every write is atomic: the old file stays)."""
    try:
        free = f", {human_size(shutil.disk_usage(run_dir).free)} free"
    except OSError:
        free = ""
    size = f"{human_size(needed)} needed" if isinstance(needed, int) else (needed or "")
    kept = sorted(p.name for p in run_dir.glob("*.ckpt")) if run_dir.is_dir() else []
    intact = (
        f"the checkpoints written before ({', '.join(kept)}) are intact"
        if kept
        else "no checkpoint had been written there yet, nothing earlier was changed"
    )
    return KtaError(
        f"no space left on device: could not write {what} ({size}{free}); {intact}; "
        "the run stopped (free some space and run it again)"
    )


@contextlib.contextmanager
def disk_full_reported(
    path: Path,
    needed: Callable[[], int | str | None],
    run_dir: Path | None = None,
    what: str | None = None,
) -> Iterator[None]:
    """Turn a full disk while writing `path` into disk_full_error; `needed()` (asked only then)
    gives the size of what was being written; `run_dir` holds the checkpoints (path's folder)."""
    try:
        yield
    except Exception as error:
        if not is_disk_full(error):
            raise
        raise disk_full_error(what or str(path), needed(), run_dir or path.parent) from error


def write_text_atomic(path: Path, text: str) -> None:
    data = text.encode()
    with disk_full_reported(path, lambda: len(data)):
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)  # a half-written file is never left behind
            raise


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
