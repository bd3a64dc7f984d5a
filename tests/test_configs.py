"""Every option of every config group composes; kta train's options pass its checks."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from kta_cli.cli import config_dir
from kta_cli.config import validate_train

ROOT = config_dir()
PRIMARIES = sorted(p.stem for p in ROOT.glob("*.yaml"))
OPTIONS = sorted(
    (group.name, option.stem)
    for group in ROOT.iterdir()
    if group.is_dir() and not group.name.startswith("_")
    for option in group.glob("*.yaml")
)


def compose_with(primary: str, overrides: list[str]):
    with initialize_config_dir(str(ROOT), version_base="1.3"):
        return compose(primary, overrides=overrides)


def groups_of(primary: str) -> set[str]:
    """The groups a primary config's defaults list names (data: null counts)."""
    defaults = OmegaConf.load(ROOT / f"{primary}.yaml").get("defaults", [])
    names = set()
    for entry in defaults:
        if isinstance(entry, str):
            continue
        for key in entry:
            names.add(str(key).removeprefix("optional ").removeprefix("override /"))
    return names


def test_there_is_something_to_compose():
    assert "train" in PRIMARIES and len(OPTIONS) > 20


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_group_option_composes(group: str, option: str):
    users = [p for p in PRIMARIES if group in groups_of(p)]
    assert users, f"config group {group}/ is used by no primary config"
    if group == "experiment":  # an experiment is written for one command: one must take it
        errors = []
        for primary in users:
            try:
                compose_with(primary, [f"{group}={option}"])
                return
            except Exception as error:
                errors.append(f"{primary}: {error}")
        pytest.fail("; ".join(errors))
    for primary in users:
        cfg = compose_with(primary, [f"{group}={option}"])
        assert cfg is not None
        if primary == "train":
            overrides = [f"{group}={option}"]
            if group == "data" and OmegaConf.is_missing(cfg.data, "root"):
                overrides.append("data.root=/some/folder")
            validate_train(compose_with("train", overrides))


def test_experiment_files_are_global_packages():
    for path in (ROOT / "experiment").glob("*.yaml"):
        assert path.read_text().startswith("# @package _global_"), path.name


def test_configs_ship_inside_the_package_layout():
    assert Path(ROOT, "train.yaml").is_file() and Path(ROOT, "eval.yaml").is_file()
