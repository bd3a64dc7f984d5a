"""Training throughput of kta's engine against minimal hand-written PyTorch loops.

Same model, data, batch size, optimizer and thread count; the candidates run in interleaved rounds
(engine, hand loop, DataLoader loop, engine, ...) and each reports the median images/s over rounds.
Steady state: a round's rate is timed from the end of its WARMUP_STEPS-th step to its last step, so
one-off costs (first batches, starting the progress display) count for neither side.

    python scripts/bench_train.py [--model resnet18] [--img-size 32] [--steps 18] [--rounds 5]

ratio = engine images/s / hand-loop images/s; >= 1.0 means the engine adds no overhead.

`--case imagefolder`: training on a folder of PNGs (shapes written at --png-size px into a temp
dir, train/ and val/), kta reading its decoded tensor store (data.cache=auto, built once before
the rounds) against the loop common scripts write: torchvision's ImageFolder with
Resize+RandomHorizontalFlip+ToTensor+Normalize and a DataLoader with --workers workers. Whole
epochs are timed, validation and start-up included (data set and loaders, model, --epochs
epochs), on both sides; the rate is training images / wall seconds. Target: ratio >= 1.2.

    python scripts/bench_train.py --case imagefolder [--model resnet10t] [--images 2000]
    python scripts/bench_train.py --quick [--case imagefolder]   (a tiny run: does it work?)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from kta_cli.data.datasets import IMAGENET_MEAN, IMAGENET_STD, DataSpec, build_data
from kta_cli.data.shapes import SHAPES, draw_shapes
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


def make_model(name: str, img_size: int, num_classes: int = 10) -> nn.Module:
    torch.manual_seed(0)
    return build_model(name, num_classes=num_classes, img_size=img_size)


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


def write_folder(root: Path, count: int, size: int) -> Path:
    """`count` textured shapes (6 classes) as PNGs: every 10th in val/, the rest in train/."""
    from PIL import Image

    shapes = draw_shapes(count, size=size, style="texture", seed=0)
    pixels = (shapes.images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for i, label in enumerate(shapes.shape_labels.tolist()):
        folder = root / ("val" if i % 10 == 0 else "train") / SHAPES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels[i]).save(folder / f"{i}.png")
    return root


def kta_folder_round(args: argparse.Namespace, root: Path) -> float:
    """kta's Trainer on data=imagefolder (the store on disk after the first call), whole epochs."""
    started = time.perf_counter()
    spec = DataSpec(
        name="imagefolder",
        root=str(root),
        img_size=args.img_size,
        batch_size=args.batch_size,
        eval_batch_size=args.eval_batch_size,
        num_workers=args.workers,  # used once, to decode the folder on the first call
        augment={"hflip": True},
    )
    data = build_data(spec)
    model = make_model(args.model, args.img_size, len(data.class_names))
    task = ClassificationTask(model)
    optimizer = build_optimizer(model.parameters(), name="sgd", lr=0.05, momentum=0.9)
    scheduler = build_scheduler(
        optimizer, name="cosine", epochs=args.epochs, updates_per_epoch=len(data.train)
    )
    reporter = TrainingReporter(TensorBoard(None), enabled=True, progress=False)
    settings = LoopSettings(epochs=args.epochs)
    trainer = Trainer(
        task, optimizer, scheduler, settings=settings, save=lambda *a: None, reporter=reporter
    )
    trainer.fit(data.train, data.val)
    return len(data.train.labels) * args.epochs / (time.perf_counter() - started)


def torchvision_folder_round(args: argparse.Namespace, root: Path) -> float:
    """The folder loop of common training scripts: ImageFolder, per-sample PIL transforms,
    DataLoader workers, a validation pass each epoch; timed like kta_folder_round."""
    from torchvision import datasets, transforms

    started = time.perf_counter()
    size = (args.img_size, args.img_size)
    normalize = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    train_tf = transforms.Compose(
        [
            transforms.Resize(size),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            normalize,
        ]
    )
    eval_tf = transforms.Compose([transforms.Resize(size), transforms.ToTensor(), normalize])
    train_set = datasets.ImageFolder(str(root / "train"), transform=train_tf)
    val_set = datasets.ImageFolder(str(root / "val"), transform=eval_tf)
    train_loader = DataLoader(
        train_set, batch_size=args.batch_size, shuffle=True, num_workers=args.workers
    )
    val_loader = DataLoader(val_set, batch_size=args.eval_batch_size, num_workers=args.workers)
    model = make_model(args.model, args.img_size, len(train_set.classes))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(args.epochs):
        model.train()
        for x, y in train_loader:
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in val_loader)
        assert 0 <= correct <= len(val_set)
    return len(train_set) * args.epochs / (time.perf_counter() - started)


def report(samples: dict[str, list[float]]) -> dict[str, float]:
    medians = {name: statistics.median(values) for name, values in samples.items()}
    for name, value in medians.items():
        spread = f"{min(samples[name]):.0f}-{max(samples[name]):.0f}"
        print(f"  {name:<36} {value:8.0f} images/s (median; range {spread})")
    return medians


def interleaved(candidates: dict, rounds: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, run in candidates.items():
            samples[name].append(run())
    return samples


def imagefolder_case(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="kta-bench-folder-") as temp:
        root = write_folder(Path(temp) / "shapes", args.images, args.png_size)
        started = time.perf_counter()
        kta_folder_round(args, root)  # warm-up; decodes the folder once and saves the store
        first = time.perf_counter() - started
        torchvision_folder_round(args, root)  # warm-up: allocator, oneDNN primitives, imports
        candidates = {
            "kta (cached store)": lambda: kta_folder_round(args, root),
            "torchvision ImageFolder + DataLoader": lambda: torchvision_folder_round(args, root),
        }
        samples = interleaved(candidates, args.rounds)
    print(
        f"imagefolder: {args.images} shapes PNGs at {args.png_size} px (90 % train), "
        f"model={args.model} img_size={args.img_size} batch={args.batch_size} "
        f"epochs/round={args.epochs} workers={args.workers} rounds={args.rounds} "
        f"threads={args.threads} torch={torch.__version__}"
    )
    print(f"  kta's first run (decodes once, saves the store): {first:.1f} s")
    medians = report(samples)
    ratio = medians["kta (cached store)"] / medians["torchvision ImageFolder + DataLoader"]
    print(f"ratio kta / torchvision ImageFolder: {ratio:.3f} (target >= 1.2)")


def engine_case(args: argparse.Namespace) -> None:
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
    samples = interleaved(candidates, args.rounds)
    print(
        f"model={args.model} img_size={args.img_size} batch={args.batch_size} "
        f"steps/round={args.steps} rounds={args.rounds} threads={args.threads} "
        f"torch={torch.__version__}"
    )
    medians = report(samples)
    base = medians["hand loop (tensor slices)"]
    print(f"ratio engine / hand loop (tensor slices): {medians['kta engine'] / base:.3f}")
    print(
        f"ratio engine / hand loop (DataLoader):    "
        f"{medians['kta engine'] / medians['hand loop (DataLoader)']:.3f}"
    )


QUICK = {  # --quick: tiny settings that only show the script works
    "model": "test_resnet",
    "img_size": 16,
    "steps": 6,
    "rounds": 1,
    "images": 240,
    "png_size": 24,
    "epochs": 1,
    "workers": 1,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=("engine", "imagefolder"), default="engine")
    parser.add_argument("--model", default=None, help="resnet18 (engine), resnet10t (imagefolder)")
    parser.add_argument("--img-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--eval-batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=18, help="engine: steps a round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=int, default=2000, help="imagefolder: PNGs written")
    parser.add_argument("--png-size", type=int, default=48, help="imagefolder: PNG side, px")
    parser.add_argument("--epochs", type=int, default=2, help="imagefolder: epochs a round")
    parser.add_argument("--workers", type=int, default=2, help="imagefolder: DataLoader workers")
    parser.add_argument("--quick", action="store_true", help="tiny settings: a smoke run")
    args = parser.parse_args()
    if args.quick:
        vars(args).update(QUICK)
    if args.model is None:
        args.model = "resnet10t" if args.case == "imagefolder" else "resnet18"
    torch.set_num_threads(args.threads)
    (imagefolder_case if args.case == "imagefolder" else engine_case)(args)


if __name__ == "__main__":
    main()
