"""Linear probe with cached features against the plain one: the same head training, timed.

    python scripts/bench_linear_probe_cache.py --model resnet18 --img-size 32 --epochs 10

Both sides run kta's own pieces (linear_probe plan, Trainer, cached_feature_data) on digits 5-9
from the same starting weights; rounds alternate (plain, cached, plain, ...), the median of each
is reported, with the ratio and the largest difference in final head weights.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kta_cli.data.datasets import DataSpec, build_data  # noqa: E402
from kta_cli.engine.loop import LoopSettings, Trainer  # noqa: E402
from kta_cli.engine.optim import build_optimizer, build_scheduler  # noqa: E402
from kta_cli.engine.tasks import ClassificationTask  # noqa: E402
from kta_cli.models.factory import create_model  # noqa: E402
from kta_cli.report.reporter import TensorBoard, TrainingReporter  # noqa: E402
from kta_cli.strategies.features import HeadOnly, cached_feature_data  # noqa: E402
from kta_cli.strategies.freezing import linear_probe  # noqa: E402


def probe(model_name: str, img_size: int, epochs: int, cached: bool) -> tuple[float, torch.Tensor]:
    """Seconds for a whole linear probe (feature extraction included), and the head weights."""
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=5, img_size=img_size)
    data = build_data(DataSpec(img_size=img_size, classes=[5, 6, 7, 8, 9], batch_size=64))
    started = time.perf_counter()
    plan = linear_probe(model, lr=0.05)
    task = ClassificationTask(model)
    if cached:
        data = cached_feature_data(model, data, "cpu")
        task.model = HeadOnly(model)
    optimizer = build_optimizer(plan.param_groups, name="sgd", lr=0.05)
    scheduler = build_scheduler(optimizer, name="constant", epochs=epochs, updates_per_epoch=1)
    Trainer(
        task,
        optimizer,
        scheduler,
        settings=LoopSettings(epochs=epochs),
        save=lambda kind, state: None,
        reporter=TrainingReporter(TensorBoard(None), enabled=False, progress=False),
        epoch_hooks=plan.epoch_hooks,
    ).fit(data.train, data.val)
    seconds = time.perf_counter() - started
    return seconds, model.get_classifier().weight.detach().clone()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--img-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    times: dict[bool, list[float]] = {False: [], True: []}
    heads: dict[bool, torch.Tensor] = {}
    for _ in range(args.rounds):
        for cached in (False, True):
            seconds, heads[cached] = probe(args.model, args.img_size, args.epochs, cached)
            times[cached].append(seconds)
    plain, fast = statistics.median(times[False]), statistics.median(times[True])
    print(f"{args.model} at {args.img_size}px, {args.epochs} epochs, {args.rounds} rounds")
    print(f"plain linear probe : {plain:.2f} s (median; all: {times[False]})")
    print(f"cached features    : {fast:.2f} s (median; all: {times[True]})")
    print(f"speed-up           : {plain / fast:.1f}x")
    print(f"max |head difference|: {(heads[False] - heads[True]).abs().max().item():.2e}")


if __name__ == "__main__":
    main()
