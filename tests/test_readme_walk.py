"""The README followed in order, as a new user would: every `kta ...` line of its code blocks run
one after another in one folder, with tiny settings added. None may refuse, except the lines
documented to (a placeholder path, a class the data set does not have).

Slow (minutes: about sixty runs), so it is left out of the default run; `.ci/run` runs it with
`pytest -m slow`.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from PIL import Image

README = Path(__file__).resolve().parents[1] / "README.md"

# Lines that refuse by design, and the words their one-line error must hold.
DOCUMENTED_REFUSALS = {
    "ckpt=path/to/best.ckpt": "checkpoint not found",  # a placeholder for the user's own file
    "target=dog": "target class",  # digits has no class 'dog'
    "data=shapes n=32": "classes",  # documented to need a checkpoint trained on shapes
    # the chain's folders are of one task in the README's chain; in this walk, later sections
    # retrain outputs/train/latest on another class subset first
    "compare=[outputs/distill/latest": "compare checkpoints of the same task",
}

# Per command: key=value settings that make a run tiny; they replace the line's own value.
TINY = {
    "train": {
        "data.img_size": "16",
        "trainer.epochs": "1",
        "data.train_per_class": "5",
        "data.batch_size": "16",  # task=simclr needs a batch smaller than the 50 images
    },  # fmt: skip
    "distill": {
        "student": "test_resnet",
        "trainer.epochs": "1",
        "data.train_per_class": "5",
        "distill.cache_dir": "null",
    },  # fmt: skip
    "prune": {"finetune.epochs": "0", "measure.latency": "false"},
    "quantize": {
        "quant.calib_batches": "2",
        "quant.compile": "false",
        "measure.latency": "false",
        "measure.batch_size": "4",
    },  # fmt: skip
    "explain": {
        "n": "4",
        "faithfulness.steps": "4",
        "faithfulness.random_repeats": "1",
        "views.images": "64",
        "patterns.images": "64",
        "integrated_gradients.steps": "4",
        "smoothgrad.samples": "2",
        "shap.samples": "2",
        "kernel_shap.samples": "8",
        "kernel_shap.cells": "4",
    },  # fmt: skip
    "eval": {},
    "export": {
        "export.compile": "false",
        "export.batch_sizes": "[1,4]",
        "export.calib_batches": "2",
        "export.rounds": "1",
    },  # fmt: skip
}
EVERY = {"logger": "none"}
NO_TRAINER = ("quantize", "export")  # commands without a trainer group (no trainer.progress)
READS_RUN_FOLDERS = ("compare",)  # no model, data, logger or trainer: nothing to make tiny
SMALL_MODELS = {"resnet18": "test_resnet", "mobilenetv3_small_100": "test_resnet"}
# test_resnet's layer2 has one channel where resnet18's has 128
SMALL_MODEL_VALUES = {"patterns.channels=[0,3,7]": "patterns.channels=[0]"}


def readme_lines() -> list[str]:
    """The `kta ...` lines of the README's code blocks, in order, comments removed; a line
    `kta train ... strategy=X` continues the previous full `kta train` line."""
    lines, inside, previous = [], False, ""
    text = re.sub(r"\\\n\s*", " ", README.read_text())  # a line ending in \ goes on below
    script = False  # a shell script's block (#!/bin/bash: the SLURM example) is not run
    for raw in text.splitlines():
        if raw.startswith("```"):
            inside, script = not inside, False
            continue
        script = script or raw.startswith("#!")
        if not inside or script or not raw.startswith("kta ") or raw.split()[1].endswith(":"):
            continue  # `kta train: error: ...` is a printed line, not a command
        for part in re.sub(r"\s+#.*$", "", raw).strip().split(" && "):
            previous = add_line(lines, part.strip(), previous)
    return lines


def add_line(lines: list[str], line: str, previous: str) -> str:
    """Append one command; return the newest full `kta train` line (for `kta train ... X`)."""
    if not line.startswith("kta ") or re.search(r"=<[^>]*>", line):
        return previous  # `ckpt=<shapes ckpt>`: a placeholder for the user's own file
    if " ... " in line:
        line = continued(previous, line)
    elif line.startswith("kta train "):
        previous = line
    lines.append(line)
    return previous


def continued(previous: str, line: str) -> str:
    """`kta train ... strategy=X k=v`: the previous line with these settings in place of its own."""
    given = line.split(" ... ", 1)[1].split()
    keys = {word.split("=", 1)[0] for word in given}
    kept = [word for word in previous.split() if word.split("=", 1)[0] not in keys]
    return " ".join([*kept, *given])


def tiny(line: str) -> list[str]:
    """The line's arguments with tiny settings: same keys replaced, small models swapped in."""
    words = shlex.split(line)[1:]
    command = words[0]
    if "--help" in words or "--cfg" in words or command in READS_RUN_FOLDERS:
        return words
    settings = {**EVERY, **TINY.get(command, {})}
    if command not in NO_TRAINER:
        settings["trainer.progress"] = "false"
    if command == "train":
        settings["model"] = "test_resnet"
        probe = next((w.split("=")[1] for w in words if w.startswith("strategy.probe_epochs=")), 0)
        settings["trainer.epochs"] = str(int(probe) + 1)
    kept = [w for w in words[1:] if w.split("=", 1)[0].lstrip("+") not in settings]
    kept = [SMALL_MODEL_VALUES.get(w) or small_model(w) if "=" in w else w for w in kept]
    return [command, *kept, *(f"{k}={v}" for k, v in settings.items())]


def small_model(word: str) -> str:
    key, value = word.split("=", 1)
    return f"{key}={SMALL_MODELS.get(value, value)}"


def make_pictures(folder: Path) -> None:
    """The image files the README's explain lines name (photos/, cat.jpg)."""
    (folder / "photos").mkdir()
    for index in range(2):
        Image.new("RGB", (24, 24), (40 * index, 120, 200)).save(folder / "photos" / f"{index}.png")
    Image.new("RGB", (24, 24), (200, 80, 10)).save(folder / "cat.jpg")


def test_the_readme_parses_into_commands() -> None:
    lines = readme_lines()
    assert len(lines) > 40 and all(" ... " not in line for line in lines)
    assert lines[1].startswith("kta train") and "model.checkpoint=" in lines[1]  # real transfer


@pytest.mark.slow
def test_readme_examples_run_in_order(kta, tmp_path: Path) -> None:
    make_pictures(tmp_path)
    refused = []
    for line in readme_lines():
        result = kta(*tiny(line))
        expected = next((why for key, why in DOCUMENTED_REFUSALS.items() if key in line), None)
        if expected is not None:
            assert result.code == 2 and expected in result.err, (line, result.err)
        elif result.code != 0:
            refused.append(f"{line}\n    -> {result.err.strip().splitlines()[-1:]}")
    assert not refused, "README lines refused:\n" + "\n".join(refused)
