from tests.conftest import TINY


def test_train_then_eval_writes_run_folders(kta):
    result = kta("train", *TINY)
    assert result.code == 0, result.err
    run_dir = result.run_dir()
    assert (run_dir / "best.ckpt").is_file() and (run_dir / "last.ckpt").is_file()
    metrics = result.metrics()
    assert metrics["epochs_run"] == 1 and 0.0 <= metrics["test_acc"] <= 1.0
    evaluated = kta("eval", "ckpt=latest", "logger=none")
    assert evaluated.code == 0, evaluated.err
    assert (evaluated.run_dir("eval") / "confusion_matrix.png").is_file()
