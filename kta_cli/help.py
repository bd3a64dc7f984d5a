"""`kta <command> --help`: the groups that command's defaults list names, their options, and
its composed config. Hydra's own help lists every folder of configs/, groups the command never
reads included, so kta writes its own from the command's primary config."""

from __future__ import annotations

from omegaconf import OmegaConf

from kta_cli.cli import COMMANDS, MODEL_GROUPS, config_dir


def command_groups(command: str) -> dict[str, str | None]:
    """{group: default option} for the groups in configs/<command>.yaml's defaults list."""
    defaults = OmegaConf.to_container(OmegaConf.load(config_dir() / f"{command}.yaml"))
    groups: dict[str, str | None] = {}
    for entry in defaults.get("defaults", []):  # type: ignore[union-attr]
        if isinstance(entry, dict):
            for key, value in entry.items():
                groups[str(key).removeprefix("optional ")] = value
    return groups


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


def help_text(command: str, overrides: list[str]) -> str:
    from hydra import compose, initialize_config_dir

    lines = [
        f"kta {command}: {COMMANDS[command][1]}",
        "",
        f"usage: kta {command} [group=option ...] [key=value ...] [--key value ...]",
        "",
        "config groups (group=option; the default in brackets):",
    ]
    groups = command_groups(command)
    width = max(len(g) for g in groups) + 1
    for group, default in groups.items():
        options = ", ".join(group_options(group))
        extra = " (or any timm model name)" if group in MODEL_GROUPS else ""
        lines.append(f"  {group + ':':<{width}} {options}{extra}  [{default}]")
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
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


def print_command_help(command: str, overrides: list[str]) -> None:
    print(help_text(command, overrides))
