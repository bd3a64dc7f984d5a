"""Checkpoints are data, never code: tensors plus plain metadata, loaded with weights_only=True.

A kta checkpoint is a dict:
    format: "kta-checkpoint", format_version: 1
    model: state_dict            model_args: {"name", "num_classes", ...} (to rebuild it)
    data: {"img_size", "mean", "std", "in_chans", "name"}   class_names: [...]
    config: the composed config as a plain dict      parent: path of the input checkpoint or None
    kta_version, git_commit, metrics: {...}
    train_state: optimizer, scheduler, scaler, counters and RNG states (only in last.ckpt)
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from kta_cli import __version__
from kta_cli.errors import KtaError
from kta_cli.report.run_folder import disk_full_reported, model_runs, run_checkpoint

log = logging.getLogger(__name__)

FORMAT = "kta-checkpoint"
FORMAT_VERSION = 1


class _ByteCounter:
    """A file that keeps only the count of bytes written: the size a checkpoint needs."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass


def serialized_size(payload: dict[str, Any]) -> int:
    counter = _ByteCounter()
    torch.save(payload, counter)
    return counter.size


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write atomically: a temporary file in the same folder, then os.replace. A full disk is
    one KtaError naming the file and its size; the file it would have replaced stays."""
    path = Path(path)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kta_version": __version__,
        **payload,
    }
    with disk_full_reported(path, lambda: serialized_size(payload)):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                torch.save(payload, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
    return path


def load_file(path: str | Path) -> Any:
    """torch.load with weights_only=True and errors a user can act on. No unsafe fallback."""
    path = Path(path)
    if not path.is_file():
        raise KtaError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "GLOBAL" in str(error):  # the pickle names a Python callable: it would run code
            raise KtaError(
                f"refusing to load {path}: it holds Python objects, not plain tensors "
                "and metadata (kta never unpickles code)"
            ) from error
        raise KtaError(
            f"{path} is not a checkpoint (a pickle kta does not read: plain tensors and "
            "metadata only)"
        ) from error
    except Exception as error:  # a weights-only load ran no code; any failure means bad bytes
        raise KtaError(
            f"{path} is truncated or not a checkpoint ({type(error).__name__})"
        ) from error


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a kta checkpoint (see the module docstring), refusing anything else."""
    checkpoint = load_file(path)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise KtaError(
            f"{path} is not a kta checkpoint (plain weights can start a run with "
            "model.checkpoint=<file>)"
        )
    return checkpoint


Usable = Callable[[dict[str, Any]], str | None]  # a checkpoint -> None, or why a command can't


def float_only(checkpoint: dict[str, Any]) -> str | None:
    """`usable` for commands that need a float model (prune, quantize, gradient explain methods)."""
    if checkpoint.get("model_kind") != "quantized":
        return None
    quant = checkpoint.get("quant") or {}
    if quant.get("backend") == "cast":
        return f"a {quant.get('mode', 'fp16/bf16')} cast model"
    return "a quantized int8 program"


def resolve_checkpoint(
    spec: str | Path,
    outputs: str | Path = "outputs",
    *,
    usable: Usable | None = None,
    needs: str = "a float model",
) -> Path:
    """A checkpoint file, a run folder (its best.ckpt), or `latest`.

    `latest` is the newest run that made a model (outputs/latest, a folder of links to the
    newest run's files: report/run_folder.py mark_latest). With `usable` (None for a checkpoint
    this command can use, else why not), it is the newest run whose checkpoint the command can
    use; the log names the runs passed over and why.
    """
    spec = str(spec)
    if spec == "latest" and usable is not None:
        return newest_usable(Path(outputs), usable, needs)
    path = Path(outputs) / "latest" if spec == "latest" else Path(spec)
    if path.is_dir():
        checkpoint = run_checkpoint(path)
        if checkpoint is not None:
            return checkpoint.resolve()
        raise KtaError(f"no checkpoint (best.ckpt, model.ckpt or last.ckpt) in run folder {path}")
    if not path.exists():
        if spec == "latest":
            raise no_latest(Path(outputs))
        raise KtaError(f"checkpoint not found: {spec}")
    return path.resolve()  # provenance names the real folder, not the `latest` pointer


def no_latest(outputs: Path) -> KtaError:
    return KtaError(
        f"ckpt=latest, but no run under ./{outputs} holds a checkpoint; "
        "pass ckpt=<file or run folder> (or run kta train first)"
    )


def newest_usable(outputs: Path, usable: Usable, needs: str) -> Path:
    """The newest run's checkpoint that `usable` accepts, logging the newer ones passed over."""
    passed_over: list[str] = []
    runs = model_runs(outputs)
    for run_dir in runs:
        path = run_checkpoint(run_dir)
        assert path is not None  # model_runs lists only folders with one
        reason = usable(read_metadata(path))
        if reason is None:
            skipped = f"; passed over newer {'; '.join(passed_over)}" if passed_over else ""
            log.info("latest: %s (the newest run holding %s%s)", path.resolve(), needs, skipped)
            return path.resolve()
        passed_over.append(f"{shown(run_dir, outputs)}: {reason}")
    if not runs:
        raise no_latest(outputs)
    raise KtaError(
        f"ckpt=latest, but no run under ./{outputs} holds {needs} "
        f"({'; '.join(passed_over)}); pass ckpt=<file or run folder>"
    )


def shown(run_dir: Path, outputs: Path) -> str:
    try:
        return str(run_dir.relative_to(outputs.resolve()))
    except ValueError:
        return str(run_dir)


def read_metadata(path: Path) -> dict[str, Any]:
    """A checkpoint's entries without reading its tensors into memory (mmap: only what is
    touched is read), so passing over a large model costs next to nothing."""
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # a non-zip (legacy) file cannot be mapped: load it the plain way
        loaded = load_checkpoint(path)
    return loaded if isinstance(loaded, dict) else {}


def git_commit() -> str | None:
    """The commit of the kta source tree, when it is a git checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


class RunCheckpoints:
    """Writes a run's best.ckpt and last.ckpt: fixed metadata plus the model's current weights.

    Used as the Trainer's `save` callback; only the process that owns the run folder writes.
    """

    def __init__(
        self,
        run_dir: Path,
        model: torch.nn.Module,
        metadata: dict[str, Any],
        *,
        monitor: str,
        enabled: bool = True,
        resume_extras: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        """`resume_extras()` adds what resuming needs besides the model (to last.ckpt only)."""
        self.run_dir, self.model, self.metadata = run_dir, model, metadata
        self.monitor, self.enabled, self.resume_extras = monitor, enabled, resume_extras

    def __call__(self, kind: str, train_state: dict[str, Any]) -> None:
        if not self.enabled:
            return
        loop = train_state["loop"]
        payload = {
            **self.metadata,
            "model": self.model.state_dict(),
            "metrics": {
                f"best_{self.monitor}": loop["best_value"],
                "best_epoch": loop["best_epoch"],
                "epochs_run": loop["epoch"],
            },
        }
        if kind == "last":
            payload["train_state"] = train_state
            payload.update(self.resume_extras() if self.resume_extras else {})
        save_checkpoint(self.run_dir / f"{kind}.ckpt", payload)
