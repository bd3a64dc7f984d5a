"""The `kta` dispatcher: picks the command, translates flags, hands over to Hydra, catches mistakes.

This module imports nothing heavy at the top so that `kta --help` answers at once.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from pathlib import Path
from typing import Any

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
# Commands whose bare words (no `=`, not a flag) are a list: `kta compare a b` is runs=[a,b].
POSITIONAL_LISTS = {"compare": "runs"}
# Commands that parse their own words (a sub-command and its overrides): their module's main(args).
OWN_PARSERS = ("sweep",)

# Groups whose value may also be any timm model name without a YAML file of that name.
MODEL_GROUPS = ("model", "student", "teacher")


def config_dir() -> Path:
    """configs/ inside the installed package (wheel), else beside it (source checkout).

    The YAML files are presets of schemas kept in Hydra's ConfigStore, so whoever is about to
    compose them (the CLI, tests, scripts) finds them here and gets the schemas registered.
    """
    from kta_cli.schema.store import register

    register()
    package_dir = Path(__file__).resolve().parent
    for candidate in (package_dir / "configs", package_dir.parent / "configs"):
        if candidate.is_dir():
            return candidate
    raise RuntimeError(f"kta configs not found next to {package_dir}")


HYDRA_FLAGS = {
    "--help",
    "-h",
    "--hydra-help",
    "--resolve",
    "--multirun",
    "-m",
    "--version",
    "--shell-completion",
    "-sc",
}
HYDRA_VALUE_FLAGS = {
    "--cfg",
    "-c",
    "--package",
    "-p",
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--experimental-rerun",
}
INFO_CHOICES = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}


def translate_flags(args: list[str]) -> list[str]:
    """The overrides, then Hydra's own flags (argparse takes the overrides as one run of
    positionals, and only before the flags); `--key value` and `--key=value` become `key=value`."""
    flags: list[str] = []
    overrides: list[str] = []
    i = 0
    while i < len(args):
        arg, following = args[i], args[i + 1] if i + 1 < len(args) else None
        name = arg.split("=", 1)[0]
        takes_value = following is not None and not following.startswith("-")
        if name in HYDRA_FLAGS:
            flags.append(arg)
        elif name in HYDRA_VALUE_FLAGS or name in ("--info", "-i"):
            flags.append(arg)
            if (
                "=" not in arg
                and takes_value
                and (name not in ("--info", "-i") or following in INFO_CHOICES)
            ):
                flags.append(following)
                i += 1
        elif arg.startswith("--"):
            if "=" in arg:
                value = arg.split("=", 1)[1]
            elif takes_value and "=" not in following:
                value = following
                i += 1
            else:
                value = "true"
            overrides.append(f"{name[2:]}={value}")
        else:
            overrides.append(arg)
        i += 1
    return overrides + flags


def positional_list(command: str, args: list[str]) -> list[str]:
    """`kta compare outputs/train/* 'outputs/sweep/*'`: the bare words as one quoted list
    override (Hydra's grammar reads neither a bare path nor a glob as an override)."""
    key = POSITIONAL_LISTS.get(command)
    if key is None:
        return args
    kept, words, i = [], [], 0
    while i < len(args):
        arg = args[i]
        kept_value = arg.startswith("-") and "=" not in arg and arg not in HYDRA_FLAGS
        if kept_value and i + 1 < len(args) and not args[i + 1].startswith("-"):
            kept += [arg, args[i + 1]]  # `--lineage <run>`, `--cfg job`: the flag's value
            i += 1
        elif arg.startswith("-") or "=" in arg:
            kept.append(arg)
        else:
            words.append("'" + arg.replace("\\", "\\\\").replace("'", "\\'") + "'")
        i += 1
    return ([f"{key}=[{','.join(words)}]"] if words else []) + kept


def rewrite_group_choices(command: str, overrides: list[str]) -> list[str]:
    """Check `group=option` against the YAML files; `model=<any timm name>` becomes model.name."""
    from kta_cli.errors import KtaError, did_you_mean
    from kta_cli.help import group_folders

    root = config_dir()
    folders = group_folders(root, command)  # only this command's groups (see group_folders)
    out = []
    for override in overrides:
        key, sep, value = override.partition("=")
        if key in folders and folders[key] != key:  # typed `method=`, the folder is cl_method
            options = sorted(p.stem for p in (root / folders[key]).glob("*.yaml"))
            for choice in value.split(","):  # -m method=naive,replay sweeps over both
                if choice not in options:
                    raise KtaError(did_you_mean(choice, options, what=key))
            out.append(f"{folders[key]}@{key}={value}")
            continue
        group_dir = root / key
        plain = not sep or key.startswith(("+", "~", "hydra")) or "," in value
        if plain or key not in folders or not group_dir.is_dir():
            out.append(override)
            continue
        options = sorted(p.stem for p in group_dir.glob("*.yaml"))
        if value in options or value == "null":
            out.append(override)
        elif key in MODEL_GROUPS:
            out.append(f"{key}.name={value}")  # validated against timm's registry when built
        else:
            raise KtaError(did_you_mean(value, options, what=f"{key}"))
    refuse_data_keys_without_data_set(command, out)
    return out


def refuse_data_keys_without_data_set(command: str, overrides: list[str]) -> None:
    """`data.<key>=...` alone, for a command whose data follow the checkpoint (`data: null`),
    has no data set to change; Hydra would end in a traceback ("Unexpected type for root")."""
    from omegaconf import OmegaConf

    from kta_cli.errors import KtaError

    keys = [o.partition("=")[0] for o in overrides]
    changes = [k for k in keys if k.startswith("data.")]
    if not changes or "data" in keys:
        return
    primary = OmegaConf.to_container(OmegaConf.load(config_dir() / f"{command}.yaml"))
    defaults = primary.get("defaults", [])  # type: ignore[union-attr]
    if any(isinstance(d, dict) and "data" in d and d["data"] is None for d in defaults):
        raise KtaError(
            f"{changes[0]}=... changes a data set, but kta {command} reads the checkpoint's own "
            f"data unless data=<option> is given: add it, e.g. data=shapes {changes[0]}=..."
        )


def one_line(error: BaseException) -> str:
    """A single readable line from an exception whose message may span several lines."""
    schema = schema_message(error)
    if schema:
        return schema
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    prefix = "kta_cli.errors.KtaError: "
    for line in reversed(lines):  # a KtaError re-raised from a DataLoader worker ends with it
        if line.startswith(prefix):
            return line[len(prefix) :]
    keep = [
        ln
        for ln in lines
        if not ln.startswith(
            ("full_key:", "object_type", "reference_type", "Set the environment variable")
        )
    ]
    return "; ".join(keep) or type(error).__name__


def unknown_key_message(command: str, args: list[str], error: Exception) -> str | None:
    """'unknown key optim.lrr; did you mean optim.lr?' for Hydra's "Could not override" error."""
    match = re.match(r"Could not override '([^']+)'", str(error))
    if not match:
        return None
    from hydra import compose, initialize_config_dir
    from omegaconf import DictConfig, OmegaConf

    from kta_cli.errors import did_you_mean

    key = match.group(1)
    parent, _, leaf = key.rpartition(".")
    overrides = [
        o
        for o in rewrite_group_choices(command, translate_flags(positional_list(command, args)))
        if not o.startswith(f"{key}=")
    ]
    try:
        with initialize_config_dir(str(config_dir()), version_base="1.3"):
            cfg = compose(command, overrides=overrides)
    except Exception:
        return None
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if not isinstance(node, DictConfig):
        return f"{key}: {parent} has no sub-keys"
    options = [f"{parent}.{k}" if parent else str(k) for k in node.keys()]
    hint = f" (to add a new key: +{key}=...)"
    return did_you_mean(key, options, what="config key") + hint


def schema_message(error: BaseException) -> str | None:
    """'optim.lr must be float, got 'fast'' or 'unknown config key data.styl; did you mean
    data.style?' from the OmegaConf error (maybe wrapped by Hydra) that a schema raised."""
    from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

    from kta_cli.errors import did_you_mean

    while error is not None and not isinstance(error, OmegaConfBaseException):
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    key = getattr(error, "full_key", None)
    if error is None or not key:
        return None
    text = str(error).splitlines()[0]
    wrong_type = re.match(r"Value '(.*?)' (?:of type '\w+' )?could not be converted to (\w+)", text)
    if wrong_type:
        return f"{key} must be {wrong_type.group(2).lower()}, got '{wrong_type.group(1)}'"
    if isinstance(error, ConfigKeyError) and error.object_type is not None:
        import dataclasses

        parent = key.rpartition(".")[0]
        known = [
            f"{parent}.{f.name}" if parent else f.name
            for f in dataclasses.fields(error.object_type)
        ]
        return did_you_mean(key, known, what="config key")
    return f"{key}: {text}"


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
            importlib.import_module(COMMANDS[command][0]).main(args)
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
