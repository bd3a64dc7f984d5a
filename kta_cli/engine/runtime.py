"""Where a run executes: device, thread count, and the process group under torchrun."""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import torch
from rich.markup import escape

from kta_cli.engine.stopping import Interrupted
from kta_cli.errors import KtaError
from kta_cli.report.reporter import console
from kta_cli.report.run_folder import current_run_dir


@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise KtaError(
            f"trainer.device={name!r} is not a device (auto, cpu, cuda, cuda:N)"
        ) from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise KtaError(f"trainer.device={name} but no CUDA device is available; use cpu or auto")
    return device


def start_runtime(device_name: str, threads: int | None = None) -> Runtime:
    """Join the torchrun process group when WORLD_SIZE > 1 (gloo on CPU, nccl on GPU)."""
    if threads:
        torch.set_num_threads(threads)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_name)
    if world_size == 1:
        return Runtime(device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend)
    return Runtime(device, rank, world_size)


def stop_runtime(runtime: Runtime) -> None:
    if runtime.distributed and torch.distributed.is_initialized():
        # An autograd graph that ran a collective (SimCLR's all-gather) sits in a reference
        # cycle; freed after the group is gone, gloo aborts the process at exit (SIGABRT,
        # "terminate called without an active exception", about one run in three on torch 2.14).
        gc.collect()
        torch.distributed.destroy_process_group()


def barrier(runtime: Runtime) -> None:
    if runtime.distributed:
        torch.distributed.barrier()


def shared_run_dir(runtime: Runtime) -> Path:
    """Rank 0's run folder, known to every rank (the others only read from it)."""
    folder = [str(current_run_dir())]
    if runtime.distributed:
        torch.distributed.broadcast_object_list(folder, src=0)
    return Path(folder[0])


def run_in_runtime(
    command: str, *, device: str, threads: int | None, body: Callable[[Runtime], dict[str, Any]]
) -> dict[str, Any]:
    """Run a training command inside its runtime (process group under torchrun). Stopped on
    request (Ctrl-C, SIGTERM, SIGUSR1: see engine/stopping.py), it prints how to resume and
    exits 130 (Ctrl-C) or 75 (a signal)."""
    runtime = start_runtime(device, threads)
    try:
        return body(runtime)
    except Interrupted as stop:
        exit_stopped(command, stop, print_line=runtime.is_main)
    finally:
        stop_runtime(runtime)


# What a stopped run tells the user to do next when a caller above the command decides it (kta
# sweep: the trial's slot goes back to the study and the same sweep command continues).
STOP_HINTS: list[str] = []


@contextlib.contextmanager
def stop_hint(text: str) -> Iterator[None]:
    """A run stopped inside this block ends with `text` instead of its own resume hint."""
    STOP_HINTS.append(text)
    try:
        yield
    finally:
        STOP_HINTS.pop()


def exit_stopped(command: str, stop: Interrupted, print_line: bool = True) -> NoReturn:
    """One line saying where the run stopped and how to go on, then the stop's exit code. Also
    the dispatcher's, for commands that train without a run folder (prune's fine-tuning)."""
    if STOP_HINTS:
        hint = STOP_HINTS[-1]
    elif stop.checkpoint is not None:
        hint = (
            f"last.ckpt saved in {stop.checkpoint.parent}; continue with "
            f"`kta {command} trainer.resume=auto` (same settings, same working directory) "
            f"or trainer.resume={stop.checkpoint.parent}"
        )
    else:
        hint = f"kta {command} keeps no checkpoint while it trains; run the command again"
    if print_line:
        console.print(f"[yellow]{stop}[/yellow]: {escape(hint)}", soft_wrap=True)
    sys.exit(stop.exit_code)
