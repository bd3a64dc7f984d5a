"""Every option of every config group composes into its command's schema and passes its checks."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from kta_cli.data.spec import DataSpec
from kta_cli.help import group_folders
from kta_cli.overrides import config_dir
from kta_cli.schema.groups import ModelConfig, StrategyConfig
from kta_cli.schema.store import COMMAND_SCHEMAS, validate

ROOT = config_dir()
PRIMARIES = sorted(p.stem for p in ROOT.glob("*.yaml"))
OPTIONS = sorted(
    (group.name, option.stem)
    for group in ROOT.iterdir()
    if group.is_dir() and not group.name.startswith("_")
    for option in group.glob("*.yaml")
)
NEEDS = {  # what an option cannot run without
    ("data", "imagefolder"): ["data.root=/some/folder"],
    ("strategy", "partial"): ["strategy.frozen_stages=1"],
}


def compose_with(primary: str, overrides: list[str]):
    with initialize_config_dir(str(ROOT), version_base="1.3"):
        return compose(primary, overrides=overrides)


def test_every_command_has_a_primary_config_and_a_schema():
    assert set(PRIMARIES) == set(COMMAND_SCHEMAS) and len(OPTIONS) > 40


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_group_option_composes_and_validates(group: str, option: str):
    users = [p for p in PRIMARIES if group in group_folders(ROOT, p).values()]
    assert users, f"config group {group}/ is used by no primary config"
    as_typed = {folder: name for name, folder in group_folders(ROOT, users[0]).items()}[group]
    choice = group if as_typed == group else f"{group}@{as_typed}"  # cl_method@method (help.py)
    overrides = [f"{choice}={option}", *NEEDS.get((group, option), [])]
    if group == "experiment":  # an experiment is written for one command: one must take it
        errors = []
        for primary in users:
            try:
                validate(compose_with(primary, overrides))
                return
            except Exception as error:
                errors.append(f"{primary}: {error}")
        pytest.fail("; ".join(errors))
    for primary in users:
        typed = validate(compose_with(primary, overrides))
        assert isinstance(typed, COMMAND_SCHEMAS[primary])  # every key typed by the schema


def test_groups_are_typed_by_their_shared_schemas():
    train = compose_with("train", ["strategy=lp_ft"])
    assert OmegaConf.get_type(train.data) is DataSpec
    assert OmegaConf.get_type(train.model) is ModelConfig
    assert issubclass(OmegaConf.get_type(train.strategy), StrategyConfig)
    distill = compose_with("distill", ["student=test_resnet"])
    assert OmegaConf.get_type(distill.student) is ModelConfig  # a student is a model
    plain = compose_with("train", ["model=test_resnet"])
    assert distill.student == plain.model  # the student preset is the model preset


def test_data_presets_only_say_what_differs_from_the_schema():
    for path in (ROOT / "data").glob("*.yaml"):
        keys = set(OmegaConf.load(path)) - {"defaults"}
        assert len(keys) <= 8, f"{path.name} repeats the data schema: {sorted(keys)}"


def test_a_timm_name_for_model_still_composes():
    cfg = compose_with("train", ["model.name=resnet10t"])
    assert validate(cfg).model.name == "resnet10t"


def test_experiment_files_are_global_packages():
    for path in (ROOT / "experiment").glob("*.yaml"):
        assert path.read_text().startswith("# @package _global_"), path.name


def test_configs_ship_inside_the_package_layout():
    assert Path(ROOT, "train.yaml").is_file() and Path(ROOT, "eval.yaml").is_file()
