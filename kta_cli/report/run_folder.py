"""The run folder every command writes: where it is, metrics.json, and the `latest` pointers."""

from __future__ import annotations

import json
import math
import os
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


def mark_latest(run_dir: Path, command: str) -> None:
    """Point outputs/<command>/latest at this run folder, and outputs/latest too when the run
    made a model (so `ckpt=latest` still finds one after an eval or explain run).

    Relative symlinks. Sweep runs sit deeper (outputs/<command>/<time>_sweep/<n>); the pointers
    still go to the folder named after the command and its parent.
    """
    run_dir = run_dir.resolve()
    command_dir = next((p for p in run_dir.parents if p.name == command), run_dir.parent)
    pointers = [command_dir / "latest"]
    if any(run_dir.glob("*.ckpt")):
        pointers.append(command_dir.parent / "latest")
    for pointer in pointers:
        try:
            tmp = pointer.with_name(f".latest.{os.getpid()}")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(os.path.relpath(run_dir, pointer.parent), target_is_directory=True)
            os.replace(tmp, pointer)
        except OSError:
            continue


def config_as_dict(cfg: Any) -> dict[str, Any]:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
