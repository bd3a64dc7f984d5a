"""`kta sweep <command> sweep=<space> [sweep.key=value ...] [the command's overrides ...]`.

Not a Hydra run of its own: the words after the command are split into the sweep's settings
(sweep=..., sweep.*), composed from configs/sweep.yaml, and the searched command's overrides,
checked by composing that command's config. Each trial then runs through the dispatcher.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from kta_cli.errors import KtaError, did_you_mean, one_line
from kta_cli.overrides import (
    MODEL_GROUPS,
    config_dir,
    rewrite_group_choices,
    translate_flags,
    unknown_key_message,
)

Run = Callable[[str, list[str]], None]
NOT_SEARCHABLE = ("sweep", "compare")  # commands that run no experiment of their own


class SweepStopped(KeyboardInterrupt):
    """SIGTERM outside a training loop (which stops at a step boundary by itself)."""


def main(args: list[str], run: Run, commands: list[str]) -> None:
    """`run(command, args)` runs one kta command (the dispatcher's run_command); `commands` are
    the dispatcher's commands. Passed in, so that this module never imports the dispatcher."""
    if not args or args[0] in ("-h", "--help"):
        print_help()
        return
    command, rest = args[0], translate_flags(args[1:])
    searchable = [name for name in commands if name not in NOT_SEARCHABLE]
    if command not in searchable:
        raise KtaError(did_you_mean(command, searchable, what="command to sweep"))
    if any(a in ("--help", "-h") for a in rest):
        print_help()
        return
    flags = [a for a in rest if a.startswith("-")]
    if flags:
        raise KtaError(f"kta sweep runs each trial itself; {flags[0]} is not for a sweep")
    own = [a for a in rest if a.partition("=")[0] in ("sweep",) or a.startswith("sweep.")]
    fixed = [a for a in rest if a not in own]
    sweep(command, own, fixed, run)


def compose(primary: str, overrides: list[str], extra: tuple[str, ...] = ()) -> Any:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    try:
        with initialize_config_dir(str(config_dir()), version_base="1.3"):
            checked = rewrite_group_choices(primary, overrides)
            return hydra_compose(primary, overrides=[*checked, *extra])
    except KtaError:
        raise
    except Exception as error:  # Hydra's and OmegaConf's refusals: one line, did-you-mean
        line = unknown_key_message(primary, overrides, error) or one_line(error)
    # raised here, not inside `except`: the dispatcher would read the OmegaConf error it chains to
    raise KtaError(line if primary == "sweep" else f"{line} (an override for kta {primary})")


def sweep(command: str, own: list[str], fixed: list[str], run: Run) -> None:
    from kta_cli.sweep.report import write_reports
    from kta_cli.sweep.study import counted
    from kta_cli.sweep.trials import run_trials

    study, plan = prepare(command, own, fixed)

    def launch(overrides: list[str], run_dir: Path) -> None:
        run(command, [*overrides, f"hydra.run.dir={run_dir}"])

    previous = signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        ran = run_trials(study, plan, launch)
    except (KeyboardInterrupt, SystemExit) as stop:  # every finished trial is in the storage
        write_reports(study, plan.folder, command=command, fixed=fixed, metric=plan.metric)
        ended = [t for t in counted(study) if t.state.is_finished()]
        print(
            f"kta sweep: stopped; the study keeps its {len(ended)} ended trials "
            f"({plan.folder / 'trials.md'}): run the same command to continue",
            file=sys.stderr,
        )
        sys.exit(exit_code(stop))
    finally:
        signal.signal(signal.SIGTERM, previous)
    summary = write_reports(study, plan.folder, command=command, fixed=fixed, metric=plan.metric)
    print_summary(summary, plan.folder, ran, plan)


def prepare(command: str, own: list[str], fixed: list[str]) -> tuple[Any, Any]:
    """The study (created or continued) and the plan, after every check that needs no trial."""
    from kta_cli.help import group_folders, group_options
    from kta_cli.sweep.setup import study_and_plan
    from kta_cli.sweep.space import check_keys, parse_space

    choice, options = sweep_options(own)
    space = parse_space(options.params)
    root = config_dir()
    folders = group_folders(root, command)
    groups = {  # model groups also take any timm name: no option list to check against
        name: [] if name in MODEL_GROUPS else group_options(root, folder)
        for name, folder in folders.items()
    }
    composed = OmegaConf.to_container(compose(command, fixed), resolve=False)
    check_keys(space, composed, groups, command)
    return study_and_plan(command, fixed, options, space, choice)


def sweep_options(own: list[str]) -> tuple[str, Any]:
    """(the space's name, the typed sweep options); sweep=<path>.yaml reads a space file kept
    anywhere (on Hydra's search path for this one composition, so it layers the same way)."""
    import tempfile

    from kta_cli.schema.store import validate

    choice = next((a.partition("=")[2] for a in own if a.partition("=")[0] == "sweep"), "lr")
    if not choice.endswith((".yaml", ".yml")):
        return choice, validate(compose("sweep", own)).sweep
    path = Path(choice).resolve()
    if not path.is_file():
        raise KtaError(f"sweep={choice}: no such file (or give a name from configs/sweep/)")
    rest = [a for a in own if a.partition("=")[0] != "sweep"]
    with tempfile.TemporaryDirectory() as search:
        (Path(search) / "sweep").mkdir()
        (Path(search) / "sweep" / "user_space.yaml").write_text(path.read_text())
        extra = (f"hydra.searchpath=[file://{search}]", "sweep=user_space")
        return path.stem, validate(compose("sweep", rest, extra)).sweep


def exit_code(stop: BaseException) -> int:
    """The stopped run's own code (75 for a signal, 130 for Ctrl-C), or the same for the sweep."""
    if isinstance(stop, SystemExit) and isinstance(stop.code, int):
        return stop.code
    return 75 if isinstance(stop, SweepStopped) else 130


def stop_on_sigterm(signum: int, frame: object) -> None:
    raise SweepStopped()


def print_summary(summary: dict[str, Any], folder: Path, ran: int, plan: Any) -> None:
    from kta_cli.report.reporter import console

    best = summary["best"]
    console.print(
        f"sweep folder: {folder} ({ran} trials run now, {summary['trials']} in the study)"
    )
    if best is None:
        raise KtaError(f"no trial of the sweep finished; see {folder / 'trials.md'}")
    console.print(f"best: trial {best['trial']}, {plan.metric} {best['value']:.4g}")
    console.print(f"run it again: {best['run']}", soft_wrap=True)


def print_help() -> None:
    spaces = ", ".join(sorted(p.stem for p in (config_dir() / "sweep").glob("*.yaml")))
    print(
        "kta sweep: Optuna search over any kta command's config, with early pruning\n\n"
        "usage: kta sweep <command> sweep=<space> [sweep.key=value ...] [overrides ...]\n\n"
        f"spaces (configs/sweep/): {spaces}  [lr]\n"
        "sweep options (kta_cli/schema/sweep.py):\n"
        + OmegaConf.to_yaml(compose("sweep", [])).rstrip()
        + "\n\nexample: kta sweep train sweep=lr sweep.trials=8 model=test_resnet"
    )
