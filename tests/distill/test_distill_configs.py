"""Every option of the distill config groups composes; the experiments set what they promise."""

import pytest
import yaml

from kta_cli.overrides import config_dir

ROOT = config_dir()


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (ROOT / group).glob("*.yaml"))


def composed(kta, *overrides: str) -> dict:
    result = kta("distill", *overrides, "--cfg", "job")
    assert result.code == 0, result.err
    return yaml.safe_load(result.out)


@pytest.mark.parametrize("option", options("distill"))
def test_each_loss_preset_composes(kta, option):
    loss = composed(kta, f"distill={option}")["distill"]
    assert loss["kd_weight"] > 0 or loss["mse_weight"] > 0 or loss["hints"]


def test_loss_presets_combine(kta):
    loss = composed(kta, "distill=[hinton,mse,hints]")["distill"]
    assert loss["kd_weight"] == 1.0 and loss["mse_weight"] == 1.0
    assert loss["hints"] == [{"student": "auto", "teacher": "auto"}]


@pytest.mark.parametrize("option", options("student"))
def test_each_student_composes(kta, option):
    assert composed(kta, f"student={option}")["student"]["name"] == option


def test_any_timm_name_is_a_student_and_a_path_is_a_teacher(kta):
    cfg = composed(kta, "student=resnet34", "teacher=outputs/train/x/best.ckpt")
    assert cfg["student"]["name"] == "resnet34"
    assert cfg["teacher"]["name"] == "outputs/train/x/best.ckpt"  # read as a path by the command


@pytest.mark.parametrize(
    "experiment", [n for n in options("experiment") if n.startswith("distill_")]
)
def test_each_distill_experiment_composes(kta, experiment):
    cfg = composed(kta, f"experiment={experiment}")
    assert cfg["distill"]["kd_weight"] > 0
    if experiment == "distill_dark_knowledge":
        assert cfg["distill"]["omit_class"] == 3
    if experiment == "distill_hints_schedule":
        assert cfg["distill"]["temperature_schedule"] == "cosine" and cfg["distill"]["hints"]
