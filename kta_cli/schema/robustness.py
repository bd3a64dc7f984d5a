"""`kta attack`'s schema and the adversarial training task's (task=adversarial).

Epsilons are pixel units of [0, 1] images; a value may be written as a fraction, `8/255`, which
the command line hands over as a string, so eps fields are parsed here (no torch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from omegaconf import MISSING

from kta_cli.data.spec import DataSpec
from kta_cli.errors import KtaError
from kta_cli.schema.checks import is_number, non_negative, one_of, positive, ruled
from kta_cli.schema.groups import LoggerConfig, TaskConfig, TrainerConfig

ATTACKS = ("fgsm", "pgd", "pgd_l2")


def parse_eps(value: Any, key: str) -> float:
    """A number or a fraction string ('8/255') as a float >= 0; KtaError otherwise."""
    try:
        number = float(value) if is_number(value) else float(Fraction(str(value).strip()))
    except (ValueError, ZeroDivisionError):
        raise KtaError(f"{key} must be a number or a fraction like 8/255, got {value!r}") from None
    if number < 0:
        raise KtaError(f"{key} must be >= 0, got {value!r}")
    return number


def parse_eps_list(values: Any, key: str) -> list[float]:
    items = values if isinstance(values, (list, tuple)) else [values]
    if not items:
        raise KtaError(f"{key} must list at least one epsilon, e.g. {key}=[0,8/255]")
    return [parse_eps(v, f"{key}[{i}]") for i, v in enumerate(items)]


@dataclass
class AttackSettings:
    methods: list[str] = field(default_factory=lambda: ["fgsm", "pgd"])  # fgsm | pgd | pgd_l2
    eps: list[Any] = field(default_factory=lambda: [0, "1/255", "2/255", "4/255", "8/255"])
    l2_eps: list[Any] = field(default_factory=lambda: [0, 0.25, 0.5, 1.0])  # pgd_l2's radii
    steps: int = 10  # pgd, pgd_l2
    step_size: float | None = positive(None)  # absolute; null: 2.5 * eps / steps (Madry et al.)
    random_start: bool = True
    target: Any = None  # class index or name: targeted attack towards it; null: untargeted

    def check(self) -> None:
        for i, method in enumerate(self.methods):
            if method not in ATTACKS:
                raise KtaError(f"attack.methods[{i}] must be one of {', '.join(ATTACKS)}")
        parse_eps_list(self.eps, "attack.eps")
        parse_eps_list(self.l2_eps, "attack.l2_eps")
        iterative = any(m.startswith("pgd") for m in self.methods)
        if iterative and self.steps < 1:
            raise KtaError(f"attack.steps must be >= 1 for PGD, got {self.steps}")


@dataclass
class NoiseSettings:
    # Gaussian noise std in [0, 1] pixel units, added to the image and clipped to [0, 1]
    std: list[float] = ruled([0.0, 0.05, 0.1, 0.2, 0.3], (">= 0", lambda v: v >= 0), each=True)


@dataclass
class AttackSchema:
    data: DataSpec | None = None  # null: the checkpoint's own data set and preprocessing
    trainer: TrainerConfig = MISSING
    logger: LoggerConfig = MISSING
    ckpt: str = "latest"
    compare: Any = None  # more checkpoints on the same curves: one, or a list [a,b,c]
    split: str = one_of("test", "train", "val")
    images: int | None = positive(None)  # at most this many images of the split; null: all
    batch_size: int = positive(128)
    examples: int = non_negative(8)  # rows in examples.png (0: no grid)
    seed: int = 0
    attack: AttackSettings = field(default_factory=AttackSettings)
    noise: NoiseSettings = field(default_factory=NoiseSettings)


@dataclass
class AdversarialTaskConfig(TaskConfig):
    """task=adversarial: train on adversarial examples made each step."""

    name: str = one_of("adversarial")
    attack: str = one_of("fgsm", "pgd")  # fgsm: random start (Wong et al. 2020); pgd: Madry
    eps: Any = "8/255"  # pixel units of [0, 1] images
    steps: int = 7  # pgd steps while training
    step_size: float | None = positive(None)  # null: fgsm 1.25 * eps, pgd 2.5 * eps / steps
    val_steps: int = positive(10)  # PGD steps for val_robust_acc, every epoch

    def check(self) -> None:
        parse_eps(self.eps, "task.eps")
        if self.attack == "pgd" and self.steps < 1:
            raise KtaError(f"task.steps must be >= 1 for PGD, got {self.steps}")
