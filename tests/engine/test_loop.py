"""The Trainer's order of events, checked against weights worked out by hand; task state, the
planned epochs and resume."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch import nn

from kta_cli.engine.loop import LoopSettings, Trainer, task_state
from kta_cli.engine.multitask import MultiTaskTask
from kta_cli.engine.optim import build_scheduler
from kta_cli.errors import KtaError


class Batches:
    """A loader over fixed batches with the interface the loop calls (set_epoch, len, iter)."""

    def __init__(self, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.batches, self.start = batches, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.start = start_batch

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches[self.start :])


class SquaredError(nn.Module):
    """loss = mean((model(x) - y)^2): gradients simple enough to work out by hand."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, Any]:
        x, y = batch
        return {"loss": ((self.model(x) - y) ** 2).mean()}


class Recorder:
    """A reporter that keeps what it is told."""

    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []
        self.epochs: list[dict[str, float]] = []

    def on_fit_start(self, trainer: Trainer, batches: int) -> None: ...
    def on_epoch_start(self, trainer: Trainer, epoch: int, batch: int) -> None: ...
    def on_fit_end(self, trainer: Trainer) -> None: ...

    def on_step(self, trainer: Trainer, values: dict[str, float], n: int) -> None:
        self.steps.append(values)

    def on_epoch_end(self, trainer: Trainer, record: dict[str, float], improved: bool) -> None:
        self.epochs.append(record)


def make_trainer(
    task: nn.Module, params: list[nn.Parameter], lr: float, epochs: int = 1, **settings: Any
) -> tuple[Trainer, list[tuple[str, dict]]]:
    optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9)
    schedule = build_scheduler(optimizer, name="constant", epochs=epochs, updates_per_epoch=2)
    saved: list[tuple[str, dict]] = []
    trainer = Trainer(
        task,
        optimizer,
        schedule,
        settings=LoopSettings(epochs=epochs, monitor="val_loss", monitor_mode="min", **settings),
        save=lambda kind, state: saved.append((kind, state)),
        reporter=Recorder(),
    )
    return trainer, saved


def test_two_sgd_steps_match_the_hand_computed_weights():
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    task = SquaredError(model)
    trainer, saved = make_trainer(task, list(model.parameters()), lr=0.1)
    train = Batches(
        [
            (torch.tensor([[1.0]]), torch.tensor([[3.0]])),
            (torch.tensor([[2.0]]), torch.tensor([[2.0]])),
        ]
    )
    val = Batches([(torch.tensor([[1.0]]), torch.tensor([[1.0]]))])
    state = trainer.fit(train, val)

    # Step 1: w = 1, x = 1, y = 3: loss (1 - 3)^2 = 4, grad 2 (w x - y) x = -4.
    #   SGD with momentum 0.9: buffer = -4 (the first step takes the gradient as it is),
    #   w = 1 - 0.1 * (-4) = 1.4.
    # Step 2: w = 1.4, x = 2, y = 2: loss (2.8 - 2)^2 = 0.64, grad 2 * 0.8 * 2 = 3.2.
    #   buffer = 0.9 * (-4) + 3.2 = -0.4, w = 1.4 - 0.1 * (-0.4) = 1.44.
    # Validation: x = 1, y = 1: loss (1.44 - 1)^2 = 0.1936.
    # The epoch's train_loss averages the steps' losses (one example each): (4 + 0.64) / 2.
    assert model.weight.item() == pytest.approx(1.44, abs=1e-6)
    assert [s["loss"] for s in trainer.reporter.steps] == pytest.approx([4.0, 0.64])
    record = state.history[0]
    assert record["train_loss"] == pytest.approx(2.32)
    assert record["val_loss"] == pytest.approx(0.1936)
    assert state.step == 2 and state.epoch == 1 and state.best_value == pytest.approx(0.1936)
    assert [kind for kind, _ in saved] == ["best", "last"]  # the first epoch is the best so far


def test_resume_from_a_train_state_continues_the_same_steps():
    """Two steps in one go, or one step, a saved state, a fresh Trainer and the second step."""

    def run(max_steps: int | None, resume: dict | None = None) -> tuple[nn.Linear, dict]:
        model = nn.Linear(1, 1, bias=False)
        with torch.no_grad():
            model.weight.fill_(1.4 if resume else 1.0)  # the caller loads the model's weights
        trainer, saved = make_trainer(
            SquaredError(model), [model.weight], lr=0.1, max_steps=max_steps
        )
        if resume is not None:
            trainer.load_train_state(resume)
        train = Batches(
            [
                (torch.tensor([[1.0]]), torch.tensor([[3.0]])),
                (torch.tensor([[2.0]]), torch.tensor([[2.0]])),
            ]
        )
        trainer.fit(train, Batches([(torch.tensor([[1.0]]), torch.tensor([[1.0]]))]))
        return model, saved[-1][1]

    _, stopped = run(max_steps=1)
    assert stopped["loop"]["step"] == 1 and stopped["loop"]["batch_in_epoch"] == 1
    resumed, _ = run(max_steps=None, resume=stopped)
    # The momentum buffer (-4) came back with the optimizer's state: 1.44, not 1.4 - 0.32.
    assert resumed.weight.item() == pytest.approx(1.44, abs=1e-6)


def multitask_run(steps: int | None, resume: dict | None = None) -> tuple[MultiTaskTask, dict]:
    torch.manual_seed(0)
    model = nn.Linear(4, 5)  # two tasks: 2 and 3 classes
    task = MultiTaskTask(model, [("a", 2), ("b", 3)], weighting="uncertainty")
    params = [*model.parameters(), *task.loss_parameters()]
    trainer, saved = make_trainer(task, params, lr=0.5, epochs=2, max_steps=steps)
    generator = torch.Generator().manual_seed(1)
    batches = [
        (
            torch.randn(8, 4, generator=generator),
            torch.stack(
                [
                    torch.randint(0, 2, (8,), generator=generator),
                    torch.randint(0, 3, (8,), generator=generator),
                ],
                dim=1,
            ),
        )
        for _ in range(2)
    ]
    if resume is not None:  # as kta train does: the model's weights first, then the rest
        weights = resume["weights"]
        model.load_state_dict(
            {k.removeprefix("model."): v for k, v in weights.items() if k.startswith("model.")}
        )
        trainer.load_train_state(resume["train_state"])
    trainer.fit(Batches(batches), Batches(batches[:1]))
    return task, {
        "weights": {k: v.clone() for k, v in task.state_dict().items()},
        "train_state": saved[-1][1],
    }


def test_learned_task_weights_resume_exactly():
    """kta train task=multitask task.weighting=uncertainty, stopped and resumed, ends where the
    uninterrupted run ends: the learned log-variances travel in train_state['task']."""
    uninterrupted, _ = multitask_run(steps=None)
    _, stopped = multitask_run(steps=3)
    assert "log_vars" in stopped["train_state"]["task"]
    assert not any(k.startswith("model.") for k in stopped["train_state"]["task"])
    resumed, _ = multitask_run(steps=None, resume=stopped)
    assert not torch.equal(uninterrupted.log_vars, torch.zeros(2))  # the weights did learn
    for name, tensor in uninterrupted.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name


def test_task_state_leaves_out_the_model_and_frozen_parts():
    class WithTeacher(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = nn.Linear(2, 2)
            self.teacher = nn.Linear(2, 2).requires_grad_(False)
            self.adapter = nn.Linear(2, 2)

    assert sorted(task_state(WithTeacher())) == ["adapter.bias", "adapter.weight"]


def test_resume_with_other_epochs_is_refused_naming_both():
    model = nn.Linear(1, 1, bias=False)
    trainer, _ = make_trainer(SquaredError(model), [model.weight], lr=0.1, epochs=3)
    state = trainer.train_state()
    longer, _ = make_trainer(SquaredError(model), [model.weight], lr=0.1, epochs=5)
    with pytest.raises(KtaError, match=r"trainer.epochs=5.*trainer.epochs=3"):
        longer.load_train_state(state)


@pytest.mark.parametrize(("patience", "written"), [(None, [2, 4, 5]), (2, [2, 3])])
def test_checkpoint_every_writes_last_less_often_and_always_at_the_end(patience, written):
    """Five epochs, last.ckpt every 2: after epochs 2 and 4, and the fifth, where the run ends;
    early stopping (lr 0: the val loss never improves on epoch 1's) ends it at 3, also written."""
    model = nn.Linear(1, 1, bias=False)
    trainer, saved = make_trainer(
        SquaredError(model), [model.weight], lr=0.0 if patience else 0.1, epochs=5,
        checkpoint_every=2, patience=patience,
    )  # fmt: skip
    batches = Batches([(torch.tensor([[1.0]]), torch.tensor([[3.0]]))])
    trainer.fit(batches, batches)
    assert [state["loop"]["epoch"] for kind, state in saved if kind == "last"] == written


def test_a_crash_after_a_skipped_checkpoint_resumes_to_the_same_weights():
    """checkpoint_every=2 over 3 epochs: resuming from epoch 2's last.ckpt (what a crash in
    epoch 3 leaves) trains epoch 3 again and ends on the uninterrupted run's weights."""

    def trainer_for(model: nn.Linear) -> tuple[Trainer, list]:
        trainer, saved = make_trainer(
            SquaredError(model), [model.weight], lr=0.05, epochs=3, checkpoint_every=2
        )
        # a snapshot, as the file on disk is (the state's tensors keep changing in place)
        trainer.save = lambda kind, state: saved.append(
            (kind, copy.deepcopy(state), model.weight.detach().clone())
        )
        return trainer, saved

    batches = Batches([(torch.tensor([[1.0]]), torch.tensor([[3.0]])),
                       (torch.tensor([[2.0]]), torch.tensor([[2.0]]))])  # fmt: skip
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    trainer, saved = trainer_for(model)
    trainer.fit(batches, batches)
    kind, state, weight = next(entry for entry in saved if entry[0] == "last")
    assert state["loop"]["epoch"] == 2
    resumed = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        resumed.weight.copy_(weight)  # the caller loads the model's weights, then the rest
    again, _ = trainer_for(resumed)
    again.load_train_state(state)
    again.fit(batches, batches)
    assert torch.equal(resumed.weight, model.weight)
