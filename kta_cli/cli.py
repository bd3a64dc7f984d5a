"""The `kta` dispatcher: picks the command, translates flags, hands over to Hydra, catches mistakes.

This module imports nothing heavy at the top so that `kta --help` answers at once.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

from kta_cli.errors import one_line
from kta_cli.overrides import (
    MODEL_GROUPS,
    config_dir,
    positional_list,
    rewrite_group_choices,
    translate_flags,
    unknown_key_message,
)

# command -> (module with run(cfg), one-line description)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": (
        "kta_cli.commands.train",
        "train or fine-tune a model (strategies, schedules, resume)",
    ),
    "eval": (
        "kta_cli.commands.eval",
        "evaluate a checkpoint: accuracy, per-class, confusion matrix",
    ),
    "distill": ("kta_cli.commands.distill", "distil a teacher into a student (temperature, hints)"),
    "quantize": ("kta_cli.commands.quantize", "post-training int8 quantization and QAT, measured"),
    "prune": ("kta_cli.commands.prune", "unstructured and structured pruning, iterative fine-tune"),
    "explain": (
        "kta_cli.commands.explain",
        "saliency, Grad-CAM, IG, occlusion, SHAP; faithfulness",
    ),
    "fewshot": (
        "kta_cli.commands.fewshot",
        "N-way K-shot episodes on frozen features",
    ),
    "embed": ("kta_cli.commands.embed", "t-SNE and TensorBoard projector of a feature space"),
    "attack": ("kta_cli.commands.attack", "FGSM / PGD / noise robustness curves; compare models"),
    "adapt": ("kta_cli.commands.adapt", "test-time adaptation (AdaBN, TENT) to unlabelled targets"),
    "continual": (
        "kta_cli.commands.continual",
        "learn a task sequence (naive, replay, EWC, LwF, joint); accuracy matrix, forgetting",
    ),
    "export": (
        "kta_cli.commands.export",
        "ONNX (float, int8 QDQ) or TensorRT, with parity and latency measured",
    ),
    "compare": (
        "kta_cli.commands.compare",
        "mean ± std over seeds of run, sweep and multirun folders; --lineage of a checkpoint",
    ),
    "sweep": ("kta_cli.commands.sweep", "Optuna search over a command's config, early pruning"),
}
# Commands that parse their own words (a sub-command and its overrides): their module's
# main(args, run_command, command names), which runs other commands through the dispatcher.
OWN_PARSERS = ("sweep",)


def print_commands() -> None:
    print("usage: kta <command> [overrides ...] [--key value ...]\n\ncommands:")
    for name, (_, description) in COMMANDS.items():
        print(f"  {name:<10} {description}")
    print(
        "\n`kta <command> --help` lists its config groups; `--cfg job` prints the composed config."
    )


def run_command(command: str, args: list[str]) -> None:
    import hydra

    from kta_cli.schema.store import validate

    args = positional_list(command, args)
    if any(flag in args for flag in ("--help", "-h")):
        from kta_cli.help import CommandInfo, print_command_help

        info = CommandInfo(command, COMMANDS[command][1], config_dir(), MODEL_GROUPS)
        print_command_help(info, rewrite_group_choices(command, translate_flags(args)))
        return
    overrides = [
        f"hydra.job.name={command}",
        *rewrite_group_choices(command, translate_flags(args)),
    ]
    if os.environ.get("RANK", "0") != "0":  # torchrun: only rank 0 owns the run folder
        overrides += [
            "hydra.output_subdir=null",
            "hydra/job_logging=disabled",
            f"hydra.run.dir={Path(os.environ.get('TMPDIR', '/tmp')) / 'kta-rank'}",
        ]
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach our boundary instead of Hydra's printer
    sys.argv = [f"kta {command}", *overrides]

    failures: list[Exception] = []
    dispatcher_pid = os.getpid()

    def task(cfg: Any) -> Any:
        try:
            return run_once(cfg)
        except SystemExit as stop:  # 75, 130: a stop, not a traceback, in a launcher's job too
            if os.getpid() == dispatcher_pid or not isinstance(stop.code, int) or not stop.code:
                raise
            raise JobExited(stop.code, stopped_job_line(stop.code)) from None

    def run_once(cfg: Any) -> Any:  # the command (and torch) load only when a run starts
        try:
            validate(cfg)  # every range rule, before any work
            return importlib.import_module(COMMANDS[command][0]).run(cfg)
        except Exception as error:  # raised below, past Hydra's own error printing
            exit_if_stopped(command, error)  # now: a sweep must not start its next run
            if os.getpid() != dispatcher_pid:  # a launcher's job process (submitit): Hydra
                raise  # sends the error back in the job's result; its sweeper re-raises it here
            failures.append(error)
            return None

    hydra.main(config_path=str(config_dir()), config_name=command, version_base="1.3")(task)()
    if failures:
        raise failures[0]


class JobExited(Exception):
    """A launcher's job process (submitit) ended with an exit code (a stop: 75, 130); sent back
    in the job's result, the dispatcher exits with the same code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)  # args rebuild it when unpickled in the dispatcher
        self.code, self.message = code, message


def stopped_job_line(code: int) -> str:
    from hydra.core.hydra_config import HydraConfig

    job = HydraConfig.get()
    run_dir = job.runtime.output_dir
    return (f"job {job.job.num} stopped (exit code {code}); its run folder: {run_dir}, its own "
            f"line in its log under {Path(run_dir).parent / '.submitit'}")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print_commands()
        return
    if argv[0] in ("-V", "--version"):
        from kta_cli import __version__

        print(f"kta {__version__}")
        return
    command, args = argv[0], argv[1:]
    try:
        if command not in COMMANDS:
            from kta_cli.errors import KtaError, did_you_mean

            raise KtaError(did_you_mean(command, COMMANDS, what="command"))
        if command in OWN_PARSERS:
            importlib.import_module(COMMANDS[command][0]).main(args, run_command, list(COMMANDS))
        else:
            run_command(command, args)
    except KeyboardInterrupt:
        print("kta: interrupted", file=sys.stderr)
        sys.exit(130)
    except JobExited as stopped:
        print(f"kta {command}: {stopped.message}", file=sys.stderr)
        sys.exit(stopped.code)
    except Exception as error:  # the error boundary: user mistakes get one line, exit code 2
        error = disk_full_as_user_error(error)
        if not is_user_error(error) or os.environ.get("KTA_DEBUG") == "1":
            raise
        message = unknown_key_message(command, args, error) or one_line(error)
        print(f"kta {command}: error: {message}", file=sys.stderr)
        sys.exit(2)


def exit_if_stopped(command: str, error: BaseException) -> None:
    """A run stopped by Ctrl-C, SIGTERM or SIGUSR1 that no run_in_runtime reported (prune's and
    quantize's fine-tuning): the same line and exit code (75, or 130 for Ctrl-C)."""
    if "kta_cli.engine.stopping" not in sys.modules:  # nothing trained: torch is not even loaded
        return
    from kta_cli.engine.runtime import exit_stopped
    from kta_cli.engine.stopping import Interrupted

    if isinstance(error, Interrupted):
        exit_stopped(command, error, print_line=os.environ.get("RANK", "0") == "0")


def disk_full_as_user_error(error: Exception) -> Exception:
    """kta's writers say which file a full disk refused (a KtaError); Hydra's first writes of
    the run folder (.hydra/, the log) do not, and get this line."""
    from kta_cli.errors import KtaError
    from kta_cli.report.run_folder import is_disk_full

    if isinstance(error, KtaError) or not is_disk_full(error):
        return error
    return KtaError(
        f"no space left on device: could not write the new run folder under ./outputs "
        f"({error}); nothing was trained; free some space and run it again"
    )


def is_user_error(error: BaseException) -> bool:
    from kta_cli.errors import KtaError

    if isinstance(error, KtaError):  # also when re-raised from a DataLoader worker
        return True
    module = type(error).__module__ or ""
    if module.startswith(("hydra.errors", "omegaconf.errors", "hydra._internal")):
        return True
    frame = error.__traceback__  # raised inside Hydra's own code: a command-line misuse
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    return frame is not None and f"{os.sep}hydra{os.sep}" in frame.tb_frame.f_code.co_filename
