"""`kta continual`: a three-task run writes its matrix and chained step folders; bad input is
one line and exit 2."""

import json

import pytest

from kta_cli.engine.checkpoint import load_checkpoint

# three digit tasks of two classes, 10 training images per class, test_resnet at 16 px, 1 epoch
TINY = [
    "model=test_resnet",
    "data.img_size=16",
    "data.train_per_class=10",
    "trainer.epochs=1",
    "trainer.progress=false",
    "scenario.tasks=[[0,1],[2,3],[4,5]]",
]


def test_three_task_replay_run_writes_its_matrix_and_chained_step_folders(kta):
    result = kta("continual", *TINY, "method=replay", "method.buffer_size=12")
    assert result.code == 0, result.err
    folder = result.run_dir("continual")
    metrics = json.loads((folder / "metrics.json").read_text())
    matrix = metrics["accuracy_matrix"]
    assert len(matrix) == 3 and all(
        len(row) == 3 and all(0 <= a <= 1 for a in row) for row in matrix
    )
    assert metrics["tasks"] == ["0+1", "2+3", "4+5"]
    # class-incremental: before a task is learned its classes were never targets, so ~0
    assert matrix[0][2] < 0.2
    for key in ("average_accuracy", "forgetting", "backward_transfer"):
        assert isinstance(metrics[key], float)
    assert metrics["forgetting"] == pytest.approx(
        (max(matrix[0][0], matrix[1][0]) - matrix[2][0] + matrix[1][1] - matrix[2][1]) / 2
    )
    steps = [folder / step["folder"] for step in metrics["steps"]]
    parents = [load_checkpoint(step / "last.ckpt")["parent"] for step in steps]
    assert parents == [None, str(steps[0] / "last.ckpt"), str(steps[1] / "last.ckpt")]
    last_step = json.loads((steps[2] / "metrics.json").read_text())
    assert last_step["accuracy_per_task"] == matrix[2]
    assert sum(last_step["buffer_labels"]) == 12  # the memory after the last task, at its size
    for picture in ("accuracy_matrix.png", "accuracy_over_steps.png"):
        assert (folder / picture).stat().st_size > 5000
    assert any(folder.glob("events.out.tfevents*"))  # the scenario's own TensorBoard
    assert "forgetting" in result.out and "after 2 (4+5)" in result.out
    # the scenario folder names the final model: kta eval scores it on the scenario's data
    scored = kta("eval", f"ckpt={folder}", "logger=none", "eval.temperature_scaling=false")
    assert scored.code == 0, scored.err
    assert scored.metrics("eval")["parent"] == str((steps[2] / "last.ckpt").resolve())


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["scenario=split_digit"], "did you mean 'split_digits'"),
        (["method=ewcc"], "did you mean 'ewc'"),
        (["method=replay", "method.buffer_size=100000"], "larger than the scenario's"),
        (["scenario.tasks=[[0,1],[]]"], "scenario.tasks[1] is empty"),
        (["scenario.tasks=null", "scenario.order=[0,1,2]"], "must list each of the 10 classes"),
        (["data=cifar10"], "scenario=split_digits is built on digits; data=cifar10 is not read"),
        (["method=ewc", "method.lambda=-1"], "method.lambda must be >= 0"),
        (["method=replay", "method.buffer=fifo"], "method.buffer must be one of reservoir"),
        (["method=replay", "method.bufer_size=5"], "did you mean 'method.buffer_size'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(kta, args, expected):
    result = kta("continual", *TINY, *args)
    assert result.code == 2, result.err
    assert len(result.err.strip().splitlines()) == 1 and expected in result.err
