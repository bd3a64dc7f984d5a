"""`kta distill` takes the teacher's data set by default (issue 16); `data=` still overrides."""

from __future__ import annotations

from kta_cli.distill.setup import transfer_data
from kta_cli.engine.checkpoint import load_checkpoint
from tests.conftest import TINY
from tests.distill.conftest import DISTILL_TINY

SHAPES = ["data=shapes", "data.per_class=12", "data.style=texture"]


def test_a_bare_distill_learns_on_the_teachers_shapes(kta):
    trained = kta("train", *TINY, *SHAPES)
    assert trained.code == 0, trained.err
    teacher = trained.run_dir() / "best.ckpt"
    result = kta("distill", f"teacher.checkpoint={teacher}", *DISTILL_TINY)
    assert result.code == 0, result.err
    student = load_checkpoint(result.run_dir("distill") / "best.ckpt")
    data = student["config"]["data"]
    assert (data["name"], data["style"], data["per_class"]) == ("shapes", "texture", 12)
    assert data["train_per_class"] == 8  # the user's data.* setting still applies
    assert len(student["class_names"]) == 6 and data["img_size"] == 16
    # data= picks another set: the digits' 10 classes do not match the teacher's 6
    refused = kta("distill", f"teacher.checkpoint={teacher}", *DISTILL_TINY, "data=digits")
    assert refused.code == 2 and "predicts 6 classes" in refused.err


def test_the_teachers_options_are_the_base_and_given_keys_replace_them():
    teacher = {
        "data": {"img_size": 24, "mean": [0.5] * 3, "std": [0.2] * 3},
        "config": {"data": {"name": "shapes", "style": "noise", "batch_size": 16, "seed": 3}},
    }
    cfg_data = {"name": "digits", "img_size": None, "mean": None, "std": None, "seed": 0,
                "batch_size": 64, "style": "flat"}  # fmt: skip
    values = transfer_data(cfg_data, teacher, data_chosen=False, given={"seed"})
    assert (values["name"], values["style"], values["batch_size"]) == ("shapes", "noise", 16)
    assert values["seed"] == 0 and values["img_size"] == 24 and values["mean"] == [0.5] * 3
    chosen = transfer_data(cfg_data, teacher, data_chosen=True)
    assert (chosen["name"], chosen["style"], chosen["img_size"]) == ("digits", "flat", 24)
