"""SIGTERM and SIGUSR1 (what schedulers send) stop a run resumably, like Ctrl-C, with exit 75."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from kta_cli.cli import exit_if_stopped
from kta_cli.engine.checkpoint import load_checkpoint
from kta_cli.engine.finetune import fine_tune
from kta_cli.engine.stopping import EXIT_STOPPED, Interrupted
from kta_cli.engine.tasks import ClassificationTask
from tests.conftest import TINY
from tests.engine.test_resume import assert_identical, weights

# Random numbers every step (dropout, noise), a short epoch; the thread count fixed, since
# the stopped run is a separate process.
RUN = [
    *TINY,
    "data.train_per_class=24",
    "trainer.threads=2",
    "model.drop_rate=0.2",
    "data.augment.noise_std=0.1",
    "sched=cosine",
]
STOP_AT = 3  # mid-epoch: the resumed run skips the batches the stopped one trained on
MARKER = "kta-test: in step"

# `kta train` in a process of its own. The shim only makes the signal land at a known step: in
# step STOP_AT it prints MARKER and waits until kta's handler has noted the test's signal.
SHIM = textwrap.dedent(
    f"""
    import sys, time
    from kta_cli.cli import main
    from kta_cli.engine import stopping
    from kta_cli.engine.tasks import ClassificationTask

    original, calls = ClassificationTask.forward, [0]

    def forward(self, batch):
        if self.training:
            calls[0] += 1
            if calls[0] == {STOP_AT}:
                print("{MARKER}", {STOP_AT}, flush=True)
                deadline = time.monotonic() + 120
                while stopping.stop_requested() is None and time.monotonic() < deadline:
                    time.sleep(0.01)
        return original(self, batch)

    ClassificationTask.forward = forward
    main(sys.argv[1:])
    """
)


def run_until_marker_then_signal(cwd: Path, number: signal.Signals) -> tuple[int, str]:
    (cwd / "shim.py").write_text(SHIM)
    process = subprocess.Popen(
        [sys.executable, "shim.py", "train", *RUN],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:  # ends when the process does
        lines.append(line)
        if line.startswith(MARKER):
            process.send_signal(number)
    return process.wait(timeout=120), "".join(lines)


def test_sigterm_mid_epoch_saves_the_step_and_resume_auto_matches(kta, tmp_path: Path):
    code, output = run_until_marker_then_signal(tmp_path, signal.SIGTERM)
    assert code == EXIT_STOPPED, output
    stopped_dir = next((tmp_path / "outputs" / "train").iterdir())
    stop_line = [line for line in output.splitlines() if "stopped by SIGTERM" in line]
    assert len(stop_line) == 1, output
    assert "kta train trainer.resume=auto" in stop_line[0] and str(stopped_dir) in stop_line[0]
    loop = load_checkpoint(stopped_dir / "last.ckpt")["train_state"]["loop"]
    assert (loop["step"], loop["epoch"], loop["batch_in_epoch"]) == (STOP_AT, 0, STOP_AT)
    assert not (tmp_path / "outputs" / "train" / "latest").exists()  # its weights are not final

    time.sleep(0.01)  # mtimes: the resumed run's last.ckpt is the newest
    resumed = kta("train", *RUN, "trainer.resume=auto")
    assert resumed.code == 0, resumed.err
    assert resumed.metrics()["epochs_run"] == 1
    assert load_checkpoint(resumed.run_dir() / "last.ckpt")["parent"] == str(
        stopped_dir / "last.ckpt"
    )
    uninterrupted = kta("train", *RUN)
    assert uninterrupted.code == 0, uninterrupted.err
    assert_identical(weights(uninterrupted.run_dir()), weights(resumed.run_dir()))


def signal_in_step(step: int, number: signal.Signals, monkeypatch: pytest.MonkeyPatch) -> None:
    """The process sends itself `number` during training step `step` (as a scheduler would)."""
    original, calls = ClassificationTask.forward, {"n": 0}

    def forward(self, batch):
        if self.training:
            calls["n"] += 1
            if calls["n"] == step:
                os.kill(os.getpid(), number)
        return original(self, batch)

    monkeypatch.setattr(ClassificationTask, "forward", forward)


def test_sigusr1_stops_after_the_step_it_landed_in_with_exit_75(kta, monkeypatch):
    with monkeypatch.context() as patch:
        signal_in_step(5, signal.SIGUSR1, patch)
        stopped = kta("train", *TINY)
    assert stopped.code == 75
    assert "stopped by SIGUSR1 in epoch 1 after step 5" in stopped.out
    assert "trainer.resume=auto" in stopped.out
    runs = sorted((stopped.cwd / "outputs" / "train").iterdir())
    assert load_checkpoint(runs[-1] / "last.ckpt")["train_state"]["loop"]["step"] == 5
    # the handlers were only there while training ran: the previous ones are back
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_fine_tuning_without_a_run_folder_says_to_run_again(monkeypatch, capsys):
    """prune's and quantize's fine-tuning keep no checkpoint: the dispatcher says so, exit 75."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    batches = [(torch.randn(2, 4), torch.tensor([0, 1]))] * 3

    class Loader(list):
        def set_epoch(self, epoch: int, start: int = 0) -> None:
            pass

    signal_in_step(2, signal.SIGTERM, monkeypatch)
    with pytest.raises(Interrupted) as stop:
        fine_tune(model, Loader(batches), Loader(batches), epochs=1, lr=0.1)
    assert (stop.value.step, stop.value.checkpoint) == (2, None)
    with pytest.raises(SystemExit) as exit_:
        exit_if_stopped("prune", stop.value)
    assert exit_.value.code == 75
    assert "kta prune keeps no checkpoint while it trains; run the command again" in (
        capsys.readouterr().out
    )
