"""Benchmark kta's attacks: PGD-10 adversarial images per second against a minimal hand-written
PGD loop on the same model and batch, and the cost of an adversarial-training epoch against a
plain one (training steps of the same batches through each task).

Interleaved rounds (A B A B ...) after a warm-up, medians, a fixed thread count; a random-init
model (speed does not depend on the weights).

    python scripts/bench_attack.py                 # resnet18 at 32 px, batch 64, 2 threads
    python scripts/bench_attack.py --quick         # a smoke run of the script itself
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kta_cli.engine.tasks import ClassificationTask  # noqa: E402
from kta_cli.models.factory import create_model  # noqa: E402
from kta_cli.robustness.attacks import Attack, PixelModel, perturb  # noqa: E402
from kta_cli.robustness.task import adversarial_task  # noqa: E402

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def hand_pgd(model: torch.nn.Module, images, labels, eps: float, alpha: float, steps: int):
    """The PGD loop a user would write (Madry et al.; torchattacks' PGD), as the baseline."""
    adversarial = (images + torch.empty_like(images).uniform_(-eps, eps)).clamp(0, 1)
    for _ in range(steps):
        adversarial.requires_grad_(True)
        loss = F.cross_entropy(model(adversarial), labels)
        (gradient,) = torch.autograd.grad(loss, adversarial)
        adversarial = adversarial.detach() + alpha * gradient.sign()
        adversarial = torch.min(torch.max(adversarial, images - eps), images + eps).clamp(0, 1)
    return adversarial


def timed(function: Callable[[], object]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def interleaved(contenders: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds of each contender over `rounds` A B A B ... rounds, after a warm-up."""
    for function in contenders.values():
        function()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, function in contenders.items():
            times[name].append(timed(function))
    return {name: statistics.median(values) for name, values in times.items()}


def bench_pgd(args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    model = create_model(args.model, num_classes=10, img_size=args.img_size)
    pixel = PixelModel(model, MEAN, STD).eval()
    images = torch.rand(args.batch, 3, args.img_size, args.img_size)
    labels = torch.randint(0, 10, (args.batch,))
    eps, steps = 8 / 255, 10
    attack = Attack("pgd", eps, steps)
    medians = interleaved(
        {
            "kta perturb": lambda: perturb(pixel, images, labels, attack),
            "hand-written loop": lambda: hand_pgd(pixel, images, labels, eps, attack.alpha, steps),
        },
        args.rounds,
    )
    print(f"\nPGD-{steps} L-inf, {args.model} {args.img_size}px, batch {args.batch}:")
    for name, seconds in medians.items():
        print(f"  {name:<18} {args.batch / seconds:8.1f} adversarial images/s")
    ratio = medians["hand-written loop"] / medians["kta perturb"]
    print(f"  ratio kta / hand-written: {ratio:.2f} (>= 1.0: kta is no slower)")


def train_steps(task: torch.nn.Module, batches: list, lr: float = 0.01) -> Callable[[], None]:
    optimizer = torch.optim.SGD(task.parameters(), lr=lr, momentum=0.9)

    def epoch() -> None:
        task.train()
        for batch in batches:
            loss = task(batch)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return epoch


def bench_epoch(args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    shape = (args.batch, 3, args.img_size, args.img_size)
    batches = [(torch.randn(shape) * 0.5, torch.randint(0, 10, (args.batch,)))]
    batches *= args.batches
    tasks = {
        "plain": ClassificationTask(
            create_model(args.model, num_classes=10, img_size=args.img_size)
        )
    }
    for attack, steps in (("fgsm", 1), ("pgd", 7)):
        model = create_model(args.model, num_classes=10, img_size=args.img_size)
        tasks[f"{attack}" + (f"-{steps}" if attack == "pgd" else " (random start)")] = (
            adversarial_task(
                model,
                mean=MEAN,
                std=STD,
                attack=attack,
                eps=8 / 255,
                steps=steps,
                step_size=None,
                val_steps=10,
            )
        )
    medians = interleaved(
        {name: train_steps(task, batches) for name, task in tasks.items()}, args.rounds
    )
    images = args.batch * args.batches
    print(f"\ntraining epoch of {images} images ({args.batches} batches), validation excluded:")
    for name, seconds in medians.items():
        print(f"  {name:<20} {seconds:7.2f} s  x{seconds / medians['plain']:.2f} of plain")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--img-size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=10, help="batches in the timed epoch")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    args = parser.parse_args()
    if args.quick:
        args.model, args.img_size, args.batch, args.batches, args.rounds = (
            "test_resnet",
            16,
            8,
            2,
            1,
        )
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads")
    bench_pgd(args)
    bench_epoch(args)


if __name__ == "__main__":
    main()
