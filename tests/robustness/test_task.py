"""Adversarial training: the task's outputs, its validation attack's RNG, and exact resume."""

import torch

from kta_cli.engine.checkpoint import load_checkpoint
from kta_cli.models.factory import create_model
from kta_cli.robustness.task import adversarial_task
from tests.conftest import TINY
from tests.engine.test_resume import _runs, assert_identical, weights

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]

# 80 training images in batches of 16: 5 steps an epoch; PGD-2 while training and validating.
RUN = [
    *TINY,
    "trainer.epochs=2",
    "data.train_per_class=8",
    "data.batch_size=16",
    "data.val_fraction=0.05",
    "data.test_fraction=0.05",
    "data.augment.noise_std=0.1",
    "task=adversarial",
    "task.attack=pgd",
    "task.steps=2",
    "task.val_steps=2",
]


def make_task(attack: str = "fgsm"):
    torch.manual_seed(0)
    model = create_model("test_resnet", num_classes=10, img_size=16)
    return adversarial_task(
        model, mean=MEAN, std=STD, attack=attack, eps=8 / 255, steps=2, step_size=None, val_steps=2
    )


def test_validation_attack_is_fixed_and_leaves_the_training_rng_alone():
    task = make_task().eval()
    batch = (torch.randn(8, 3, 16, 16) * 0.5, torch.randint(0, 10, (8,)))
    before = torch.get_rng_state()
    with torch.no_grad():  # as the loop evaluates
        first, second = task(batch), task(batch)
    assert torch.equal(torch.get_rng_state(), before)
    assert first["robust_loss"] == second["robust_loss"]
    assert first["robust_loss"] > first["loss"]  # PGD at 8/255 raises the loss of a random net
    assert set(first) >= {"loss", "acc", "robust_acc", "robust_loss", "logits"}


def test_training_step_trains_on_adversarial_examples():
    task = make_task("fgsm").train()
    batch = (torch.randn(8, 3, 16, 16) * 0.5, torch.randint(0, 10, (8,)))
    outputs = task(batch)
    outputs["loss"].backward()  # the loss reaches the weights, the attack left them clean
    assert all(p.grad is not None for p in task.model.parameters() if p.requires_grad)
    assert task.train_attack.alpha == 1.25 * 8 / 255  # Wong et al.'s FGSM step


def test_adversarial_training_logs_robust_accuracy_and_resumes_exactly(kta):
    reference = kta("train", *RUN)
    assert reference.code == 0, reference.err
    metrics = reference.metrics()
    assert 0 <= metrics["val_robust_acc"] <= 1 and "val_acc" in metrics
    history = load_checkpoint(reference.run_dir() / "last.ckpt")["train_state"]["loop"]["history"]
    assert [("val_robust_acc" in h, "val_acc" in h) for h in history] == [(True, True)] * 2

    stopped = kta("train", *RUN, "trainer.max_steps=7")  # inside the second epoch
    assert stopped.code == 0, stopped.err
    resumed = kta("train", *RUN, "trainer.resume=auto")
    assert resumed.code == 0, resumed.err
    assert_identical(weights(_runs(reference)[0]), weights(resumed.run_dir()))


def test_cached_feature_strategy_is_refused(kta):
    result = kta("train", *RUN, "strategy=linear_probe", "strategy.cache_features=true")
    assert result.code == 2
    assert "cached features" in result.err and len(result.err.strip().splitlines()) == 1
