"""From the words after `kta <command>` to overrides Hydra accepts: the config folder, Hydra's own
flags put last, `--key value` as `key=value`, bare words as a list, `group=option` checked against
the YAML files (any timm name for a model group), and did-you-mean for an unknown key.

Shared by the dispatcher (kta_cli/cli.py) and `kta sweep`, which composes its trial command's
config the same way. Imports nothing heavy at the top, so `kta --help` answers at once.
"""

from __future__ import annotations

import re
from pathlib import Path

from kta_cli.errors import KtaError, did_you_mean

# Commands whose bare words (no `=`, not a flag) are a list: `kta compare a b` is runs=[a,b].
POSITIONAL_LISTS = {"compare": "runs"}


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


def unknown_key_message(command: str, args: list[str], error: Exception) -> str | None:
    """'unknown key optim.lrr; did you mean optim.lr?' for Hydra's "Could not override" error."""
    match = re.match(r"Could not override '([^']+)'", str(error))
    if not match:
        return None
    from hydra import compose, initialize_config_dir
    from omegaconf import DictConfig, OmegaConf

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
