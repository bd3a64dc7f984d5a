"""A SimCLR epoch against a supervised epoch of the same model and data, through kta's Trainer.

Same model, data, batch size, optimizer and thread count; the two run in interleaved rounds
(supervised, SimCLR, supervised, ...) and each reports the median epoch time over rounds. An
epoch's time is the loop's own `epoch_time` (data, views, forward, backward, step), not the
evaluation after it. SimCLR does two forward/backward passes of the batch (one per view), so
about 2x is the floor; the target is at most 2.5x. The views alone are timed too (the batched
augmentation of kta_cli/ssl/views.py), to show what they add on top of the second pass.

    python scripts/bench_simclr.py [--model resnet18] [--img-size 32] [--rounds 5] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from kta_cli.data.datasets import DataSpec, build_data
from kta_cli.engine.loop import LoopSettings, Trainer
from kta_cli.engine.optim import build_optimizer, build_scheduler
from kta_cli.engine.tasks import ClassificationTask
from kta_cli.loading import build_model
from kta_cli.report.reporter import TensorBoard, TrainingReporter
from kta_cli.ssl.setup import SimCLRSettings, build_simclr
from kta_cli.ssl.views import ViewSettings, two_views


def one_epoch(args: argparse.Namespace, simclr: bool) -> float:
    """Seconds of one training epoch (the loop's epoch_time) of a fresh model."""
    spec = DataSpec(
        name="digits",
        img_size=args.img_size,
        batch_size=args.batch_size,
        train_per_class=args.train_per_class,
    )
    data = build_data(spec)
    torch.manual_seed(0)
    model = build_model(args.model, num_classes=10, img_size=args.img_size)
    if simclr:
        task, data = build_simclr(model, data, SimCLRSettings())
        params = list(task.parameters())
    else:
        task, params = ClassificationTask(model), list(model.parameters())
    optimizer = build_optimizer(params, name="sgd", lr=0.05, momentum=0.9)
    scheduler = build_scheduler(optimizer, name="cosine", epochs=1, updates_per_epoch=20)
    trainer = Trainer(
        task,
        optimizer,
        scheduler,
        settings=LoopSettings(epochs=1, monitor="val_knn_acc" if simclr else "val_acc"),
        save=lambda *a: None,
        reporter=TrainingReporter(TensorBoard(None), enabled=False, progress=False),
    )
    trainer.fit(data.train, data.val)
    return trainer.state.history[-1]["epoch_time"]


def views_epoch(args: argparse.Namespace) -> float:
    """Seconds to make the two views of every training batch of an epoch, nothing else."""
    spec = DataSpec(
        name="digits",
        img_size=args.img_size,
        batch_size=args.batch_size,
        train_per_class=args.train_per_class,
    )
    data = build_data(spec)
    described = spec.describe()
    settings = ViewSettings()
    started = time.perf_counter()
    for images, _ in data.train:
        two_views(images, settings, mean=described["mean"], std=described["std"])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--img-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--train-per-class", type=int, default=None)  # null: the whole split
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="test_resnet, 16 px, 2 rounds")
    args = parser.parse_args()
    if args.quick:
        args.model, args.img_size, args.train_per_class, args.rounds = "test_resnet", 16, 10, 2
    torch.set_num_threads(args.threads)
    candidates = {
        "supervised": lambda: one_epoch(args, simclr=False),
        "simclr": lambda: one_epoch(args, simclr=True),
        "views only": lambda: views_epoch(args),
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
        f"train_per_class={args.train_per_class} rounds={args.rounds} threads={args.threads} "
        f"torch={torch.__version__}"
    )
    for name, value in medians.items():
        spread = f"{min(samples[name]):.2f}-{max(samples[name]):.2f}"
        print(f"  {name:<12} {value:8.2f} s/epoch (median; range {spread})")
    ratio = medians["simclr"] / medians["supervised"]
    print(f"ratio simclr / supervised epoch: {ratio:.2f} (target <= 2.5)")
    print(f"views share of the simclr epoch: {medians['views only'] / medians['simclr']:.1%}")


if __name__ == "__main__":
    main()
