"""`kta <command> --help`: the groups that command's defaults list names, their options, and
its composed config. Hydra's own help lists every folder of configs/, groups the command never
reads included, so kta writes its own from the command's primary config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf


@dataclass
class CommandInfo:
    """What the dispatcher knows of a command (passed in, so help.py never imports cli.py)."""

    name: str
    description: str
    config_root: Path
    model_groups: tuple[str, ...]


def group_folders(root: Path, command: str) -> dict[str, str]:
    """{name on the command line: group folder} for configs/<command>.yaml's defaults list.

    An entry `cl_method@method: naive` is the folder cl_method typed as `method=...`: a folder
    named `method` would make Hydra read explain's and adapt's plain `method=` key as a group."""
    defaults = OmegaConf.to_container(OmegaConf.load(root / f"{command}.yaml"))
    folders: dict[str, str] = {}
    for entry in defaults.get("defaults", []):  # type: ignore[union-attr]
        if isinstance(entry, dict):
            for key in entry:
                folder, _, package = str(key).removeprefix("optional ").partition("@")
                folders[package or folder] = folder
    return folders


def command_groups(root: Path, command: str) -> dict[str, str | None]:
    """{group as typed: default option} for the groups in configs/<command>.yaml's defaults."""
    defaults = OmegaConf.to_container(OmegaConf.load(root / f"{command}.yaml"))
    groups: dict[str, str | None] = {}
    for entry in defaults.get("defaults", []):  # type: ignore[union-attr]
        if isinstance(entry, dict):
            for key, value in entry.items():
                folder, _, package = str(key).removeprefix("optional ").partition("@")
                groups[package or folder] = value
    return groups


def group_options(root: Path, group: str) -> list[str]:
    return sorted(p.stem for p in (root / group).glob("*.yaml"))


def help_text(info: CommandInfo, overrides: list[str]) -> str:
    from hydra import compose, initialize_config_dir

    command, root = info.name, info.config_root
    lines = [
        f"kta {command}: {info.description}",
        "",
        f"usage: kta {command} [group=option ...] [key=value ...] [--key value ...]",
        "",
        "config groups (group=option; the default in brackets):",
    ]
    groups = command_groups(root, command)
    width = max((len(g) for g in groups), default=0) + 1  # kta compare has no groups
    if not groups:
        lines.append("  (none)")
    for group, default in groups.items():
        options = ", ".join(group_options(root, group_folders(root, command)[group]))
        extra = " (or any timm model name)" if group in info.model_groups else ""
        lines.append(f"  {group + ':':<{width}} {options}{extra}  [{default}]")
    with initialize_config_dir(str(root), version_base="1.3"):
        cfg = compose(command, overrides=[o for o in overrides if not o.startswith("-")])
    lines += [
        "",
        "options (key=value), as composed now:",
        OmegaConf.to_yaml(cfg).rstrip(),
        "",
        "--cfg job prints the composed config, -m sweeps over comma-separated values, "
        "--hydra-help shows Hydra's own flags.",
    ]
    return "\n".join(lines)


def print_command_help(info: CommandInfo, overrides: list[str]) -> None:
    print(help_text(info, overrides))
