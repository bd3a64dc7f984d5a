"""What a user finds in TensorBoard and metrics.json after `kta train`."""

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.settings import TINY


def test_train_logs_scalars_images_and_hparams(kta):
    result = kta(
        "train",
        *[a for a in TINY if a != "logger=none"],
        "logger=tensorboard",
        "trainer.epochs=2",
        "trainer.log_every=5",
        "data.train_per_class=30",  # 300 images: 5 steps an epoch, enough to log every 5
    )
    assert result.code == 0, result.err
    events = EventAccumulator(str(result.run_dir()), size_guidance={"images": 4})
    events.Reload()
    tags = events.Tags()
    for tag in (
        "train/loss",
        "train/acc",
        "val/loss",
        "val/acc",
        "epoch/epoch_time",
        "epoch/images_per_sec",
        "lr/group0",
        "step/loss",
    ):
        assert tag in tags["scalars"], tag
    assert [e.step for e in events.Scalars("val/acc")] == [1, 2]
    assert "train/images" in tags["images"]
    assert events.PluginTagToContent("hparams")  # the hparams table with the final metrics
    metrics = result.metrics()
    for key in ("best_val_acc", "best_epoch", "epochs_run", "test_acc", "images_per_sec"):
        assert key in metrics, key


def test_bf16_and_channels_last_train_on_cpu(kta):
    result = kta(
        "train",
        *TINY,
        "trainer.precision=bf16",
        "trainer.channels_last=true",
        "trainer.max_steps=3",
    )
    assert result.code == 0, result.err
    fp16 = kta("train", *TINY, "trainer.precision=fp16", "trainer.max_steps=3")
    assert fp16.code == 2 and "use bf16 on CPU" in fp16.err


def test_early_stopping_stops_when_the_metric_stalls(kta):
    # lr=1e-9: validation accuracy cannot improve after the first epoch, patience 1 stops at 2.
    result = kta(
        "train",
        *TINY,
        "trainer.epochs=5",
        "optim.lr=1e-9",
        "sched=constant",
        "trainer.early_stopping.patience=1",
        "trainer.early_stopping.min_delta=0.01",
        "data.train_per_class=30",
    )
    assert result.code == 0, result.err
    metrics = result.metrics()
    assert metrics["stopped_early"] is True and metrics["epochs_run"] == 2
