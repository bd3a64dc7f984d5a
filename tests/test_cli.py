"""The dispatcher: instant help, flag translation, one-line errors with exit code 2."""

import subprocess
import sys

import pytest

from kta_cli.cli import COMMANDS
from kta_cli.overrides import translate_flags
from tests.conftest import TINY


def test_help_lists_every_command_without_importing_torch():
    code = (
        "import sys; from kta_cli.cli import main; main(['--help']); "
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().endswith("NO-TORCH")
    for command in COMMANDS:
        assert f"  {command} " in out


def test_flags_become_overrides_before_hydras_own_flags():
    args = ["--method", "gradcam", "--n=4", "--verbose", "a=b", "--cfg", "job", "-m", "x=1,2"]
    assert translate_flags(args) == [
        "method=gradcam",
        "n=4",
        "verbose=true",
        "a=b",
        "x=1,2",
        "--cfg",
        "job",
        "-m",
    ]


def test_train_help_shows_its_own_groups_and_cfg_job_prints_config(kta):
    shown = kta("train", "--help")
    assert shown.code == 0
    groups = {line.split(":")[0].strip() for line in shown.out.splitlines() if line[:2] == "  "}
    assert {"model", "data", "strategy", "task", "optim", "sched", "trainer", "logger"} <= groups
    assert not groups & {"distill", "importance", "student", "teacher"}  # train never reads them
    assert "freeze, full, gradual_unfreeze" in shown.out  # a group's options
    composed = kta("train", "--cfg", "job", "optim=adamw", "--optim.lr", "0.003")
    assert composed.code == 0 and "name: adamw" in composed.out and "lr: 0.003" in composed.out


@pytest.mark.parametrize(
    ("command", "own", "foreign"),
    [
        ("distill", {"student", "teacher", "distill", "data"}, {"strategy", "importance"}),
        ("prune", {"importance", "data", "trainer"}, {"model", "strategy", "distill"}),
        ("quantize", {"data", "logger"}, {"trainer", "importance", "model"}),
    ],
)
def test_each_command_help_lists_only_its_groups(kta, command, own, foreign):
    shown = kta(command, "--help")
    assert shown.code == 0
    header = shown.out.split("options (key=value)")[0]
    groups = {line.split(":")[0].strip() for line in header.splitlines() if line[:2] == "  "}
    assert own <= groups and not groups & foreign


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["trian"], "did you mean 'train'"),
        (["train", "optim=sgdd"], "did you mean 'sgd'"),
        (["train", "optim.lrr=0.1"], "did you mean 'optim.lr'"),
        (["train", "optim.lr=0"], "optim.lr must be > 0"),
        (["train", "optim.lr=fast"], "optim.lr must be float, got 'fast'"),
        (["train", "data.augment.hflipp=true"], "did you mean 'data.augment.hflip'"),
        (["train", "strategy=freeze", "strategy.every=2"], "unknown config key 'strategy.every'"),
        (["train", "data.classes=[a]"], "data.classes[0] must be integer"),
        (["train", "task.weighting=learned"], "task.weighting must be one of fixed, uncertainty"),
        (["prune", "prune.ratio=1.5"], "prune.ratio must be in [0, 1), got 1.5"),
        (["prune", "prune.steps=two"], "prune.steps must be integer, got 'two'"),
        (["prune", "prune.methd=structured"], "did you mean 'prune.method'"),
        (["quantize", "quant.mode=int4"], "quant.mode must be one of static"),
        (["explain", "n=0"], "n must be > 0, got 0"),
        (["distill", "distill.alpah=0.1"], "did you mean 'distill.alpha'"),
        (["distill", "distill.alpha=2"], "distill.alpha must be in [0, 1], got 2.0"),
        (["train", "trainer.epochs=0"], "trainer.epochs must be > 0"),
        (["train", "data.batch_size=-3"], "data.batch_size must be > 0"),
        (["train", "trainer.precision=fp8"], "trainer.precision must be one of"),
        (["train", "loss.label_smoothing=1.5"], "loss.label_smoothing must be in [0, 1)"),
        (["train", "model=resnt18"], "did you mean 'resnet18'"),
        (["train", "data=imagefolder"], "data.root must be set"),
        (["eval", "split=dev"], "split must be one of test, train, val"),
        (["train", "trainer.device=cuda"], "no CUDA device"),
        (["train", "trainer.resume=nowhere/last.ckpt"], "checkpoint not found"),
        (["eval", "ckpt=missing.ckpt"], "checkpoint not found"),
    ],
)
def test_user_mistakes_get_one_line_and_exit_2(kta, args, expected):
    if args[0] == "train" and args[1:] and args[1].startswith("trainer.device"):
        pytest.importorskip("torch")
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    result = kta(*args, *(["logger=none"] if args[0] in ("train", "eval") else []))
    assert result.code == 2, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert expected in lines[0] and "Traceback" not in result.err


def test_sweep_writes_one_run_folder_per_job(kta):
    # -m between overrides: argparse alone would reject it; kta moves Hydra's flags last.
    result = kta("train", *TINY, "-m", "optim.lr=0.1,0.01", "trainer.max_steps=2")
    assert result.code == 0, result.err
    sweeps = list((result.cwd / "outputs" / "train").glob("*_sweep"))
    assert len(sweeps) == 1
    runs = sorted(p.name for p in sweeps[0].iterdir() if p.is_dir())
    assert runs == ["0", "1"]
    for run in runs:
        assert (sweeps[0] / run / "last.ckpt").is_file()


@pytest.mark.parametrize("command", ["eval", "quantize", "prune", "explain", "attack"])
def test_data_key_without_a_data_set_is_one_line_not_a_traceback(kta, command: str) -> None:
    # these commands read the checkpoint's own data (data: null); Hydra cannot set a key of it
    result = kta(command, "ckpt=missing.ckpt", "data.test_style=noise")
    assert result.code == 2
    assert result.err.count("\n") == 1 and "add it, e.g. data=shapes" in result.err
