"""The distillation task: frozen teacher, loss parts, hint adapters that learn, the cache."""

import timm
import torch

from kta_cli.engine.distill_task import DistillationTask
from kta_cli.losses.distillation import soft_target_loss
from kta_cli.losses.schedules import ValueSchedule

torch.manual_seed(0)
IMAGES = torch.randn(4, 3, 16, 16)
LABELS = torch.tensor([0, 1, 2, 3])


def make_task(**kwargs) -> DistillationTask:
    torch.manual_seed(0)
    teacher = timm.create_model("test_resnet", num_classes=10)
    student = timm.create_model("test_vit", num_classes=10, img_size=16)
    options = {
        "temperature": ValueSchedule(4.0),
        "alpha": ValueSchedule(0.5),
        "total_steps": 10,
        "kd_weight": 1.0,
        **kwargs,
    }
    return DistillationTask(student, teacher, example_input=IMAGES[:2], **options)


def test_teacher_stays_frozen_in_eval_mode_while_the_student_trains():
    task = make_task()
    task.train()
    assert task.model.training and not task.teacher.training
    before = {k: v.clone() for k, v in task.teacher.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in task.parameters() if p.requires_grad], lr=0.1)
    outputs = task((IMAGES, LABELS))
    outputs["loss"].backward()
    optimizer.step()
    assert all(p.grad is None for p in task.teacher.parameters())
    assert all(torch.equal(v, task.teacher.state_dict()[k]) for k, v in before.items())


def test_loss_is_alpha_ce_plus_the_scaled_soft_targets():
    task = make_task(mse_weight=0.5).train()
    outputs = task((IMAGES, LABELS))
    assert {"loss", "ce", "kd", "mse", "acc", "logits", "temperature", "alpha"} <= set(outputs)
    expected = 0.5 * outputs["ce"] + 0.5 * (outputs["kd"] + 0.5 * outputs["mse"])
    assert torch.allclose(outputs["loss"], expected)
    with torch.no_grad():
        teacher_logits = task.teacher(IMAGES)
    kd = soft_target_loss(outputs["logits"], teacher_logits, 4.0)
    assert torch.allclose(outputs["kd"], kd, atol=1e-5)


def test_schedules_follow_the_step_count():
    task = make_task(temperature=ValueSchedule(8.0, 1.0, "linear"), total_steps=3).train()
    seen = [task((IMAGES, LABELS))["temperature"] for _ in range(3)]
    assert seen == [8.0, 4.5, 1.0]


def test_evaluation_scores_the_student_alone():
    task = make_task().eval()
    outputs = task((IMAGES, LABELS))
    assert set(outputs) == {"loss", "acc", "logits"}


def test_hints_find_the_named_layers_and_train_the_adapter():
    task = make_task(
        hints=[("blocks.1", "layer3")], alpha=ValueSchedule(1.0), kd_weight=0.0, hint_weight=1.0
    ).train()
    assert task.hints == [("blocks.1", "layer3")]
    adapter = task.adapters[0]
    start = adapter.project.weight.detach().clone()
    optimizer = torch.optim.SGD([p for p in task.parameters() if p.requires_grad], lr=0.05)
    first = None
    for _ in range(5):
        outputs = task((IMAGES, LABELS))
        optimizer.zero_grad()
        outputs["loss"].backward()
        optimizer.step()
        first = outputs["feature"].item() if first is None else first
    assert not torch.equal(start, adapter.project.weight)
    assert outputs["feature"].item() < first  # the adapter and student learn the teacher's map


def test_cached_teacher_outputs_give_the_same_loss_as_running_the_teacher():
    task = make_task(hints=[("blocks.1", "layer3")]).train()
    live = task((IMAGES, LABELS))
    outputs = task.teacher_outputs(IMAGES)
    task.use_cache({k: torch.cat([torch.zeros_like(v[:1]), v]) for k, v in outputs.items()})
    cached = task((IMAGES, LABELS, torch.tensor([1, 2, 3, 4])))
    for key in ("loss", "kd", "feature"):
        assert torch.allclose(live[key], cached[key], atol=1e-5), key
