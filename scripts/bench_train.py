"""Training throughput of kta's engine against minimal hand-written PyTorch loops.

Same model, data, batch size, optimizer and thread count; the candidates run in interleaved rounds
(engine, hand loop, DataLoader loop, engine, ...) and each reports the median images/s over rounds.
Steady state: a round's rate is timed from the end of its WARMUP_STEPS-th step to its last step, so
one-off costs (first batches, starting the progress display) count for neither side.

    python scripts/bench_train.py [--model resnet18] [--img-size 32] [--steps 18] [--rounds 5]

ratio = engine images/s / hand-loop images/s; >= 1.0 means the engine adds no overhead.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from kta_cli.data.datasets import DataSpec, build_data
from kta_cli.engine.loop import LoopSettings, Trainer
from kta_cli.engine.optim import build_optimizer, build_scheduler
from kta_cli.engine.tasks import ClassificationTask
from kta_cli.loading import build_model
from kta_cli.report.reporter import TensorBoard, TrainingReporter

WARMUP_STEPS = 3


def steady_rate(stamps: list[float], batch_size: int) -> float:
    """Images/s between the end of step WARMUP_STEPS and the end of the last step."""
    timed = stamps[WARMUP_STEPS - 1 :]
    return (len(timed) - 1) * batch_size / (timed[-1] - timed[0])


class StepClock(TrainingReporter):
    """The engine's own reporter, also noting when each step ended."""

    def __init__(self) -> None:
        super().__init__(TensorBoard(None), enabled=True, progress=False)
        self.stamps: list[float] = []

    def on_step(self, trainer, values, batch_size) -> None:  # noqa: ANN001
        super().on_step(trainer, values, batch_size)
        self.stamps.append(time.perf_counter())


def make_model(name: str, img_size: int) -> nn.Module:
    torch.manual_seed(0)
    return build_model(name, num_classes=10, img_size=img_size)


def engine_round(name: str, img_size: int, steps: int, batch_size: int) -> float:
    """kta's Trainer (task, scheduler, RNG snapshots, metrics, reporter) for `steps` steps."""
    data = build_data(DataSpec(name="digits", img_size=img_size, batch_size=batch_size))
    model = make_model(name, img_size)
    task = ClassificationTask(model)
    optimizer = build_optimizer(model.parameters(), name="sgd", lr=0.05, momentum=0.9)
    scheduler = build_scheduler(optimizer, name="cosine", epochs=100, updates_per_epoch=20)
    reporter = StepClock()
    settings = LoopSettings(epochs=100, max_steps=steps)
    trainer = Trainer(
        task, optimizer, scheduler, settings=settings, save=lambda *a: None, reporter=reporter
    )
    trainer.fit(data.train, data.val)
    return steady_rate(reporter.stamps, batch_size)


def hand_round(
    name: str, img_size: int, steps: int, batch_size: int, use_dataloader: bool
) -> float:
    """The loop a person writes by hand: forward, cross-entropy, backward, step."""
    data = build_data(DataSpec(name="digits", img_size=img_size, batch_size=batch_size))
    images, labels = data.train.images, data.train.labels
    model = make_model(name, img_size)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    loss_fn = nn.CrossEntropyLoss()
    if use_dataloader:
        batches = DataLoader(TensorDataset(images, labels), batch_size=batch_size, shuffle=True)
    else:
        batches = None
    stamps: list[float] = []
    done = 0
    while done < steps:
        if batches is not None:
            source = iter(batches)
        else:
            order = torch.randperm(len(labels))
            source = (
                (images[order[i : i + batch_size]], labels[order[i : i + batch_size]])
                for i in range(0, len(labels), batch_size)
            )
        for x, y in source:
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            stamps.append(time.perf_counter())
            done += 1
            if done == steps:
                break
    return steady_rate(stamps, batch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--img-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=18)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    candidates = {
        "kta engine": lambda: engine_round(args.model, args.img_size, args.steps, args.batch_size),
        "hand loop (tensor slices)": lambda: hand_round(
            args.model, args.img_size, args.steps, args.batch_size, use_dataloader=False
        ),
        "hand loop (DataLoader)": lambda: hand_round(
            args.model, args.img_size, args.steps, args.batch_size, use_dataloader=True
        ),
    }
    for run in candidates.values():  # warm-up: allocator, oneDNN primitives, imports
        run()
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(args.rounds):
        for name, run in candidates.items():
            samples[name].append(run())
    medians = {name: statistics.median(values) for name, values in samples.items()}
    print(
        f"model={args.model} img_size={args.img_size} batch={args.batch_size} "
        f"steps/round={args.steps} rounds={args.rounds} threads={args.threads} "
        f"torch={torch.__version__}"
    )
    for name, value in medians.items():
        spread = f"{min(samples[name]):.0f}-{max(samples[name]):.0f}"
        print(f"  {name:<28} {value:8.0f} images/s (median; range {spread})")
    base = medians["hand loop (tensor slices)"]
    print(f"ratio engine / hand loop (tensor slices): {medians['kta engine'] / base:.3f}")
    print(
        f"ratio engine / hand loop (DataLoader):    "
        f"{medians['kta engine'] / medians['hand loop (DataLoader)']:.3f}"
    )


if __name__ == "__main__":
    main()
