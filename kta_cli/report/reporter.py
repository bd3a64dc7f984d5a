"""What a user sees while a loop runs: rich progress bars, TensorBoard scalars and images."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from kta_cli.errors import KtaError
from kta_cli.report.run_folder import disk_full_reported, is_disk_full

console = Console(stderr=False)


def quiet_disk_full_in_writer_threads() -> None:
    """TensorBoard writes from a thread that prints its own traceback when the disk fills, then
    hands the error to the next call, which TensorBoard below reports in one line: keep only
    that line."""
    previous = threading.excepthook
    if getattr(previous, "kta_quiet", False):
        return

    def hook(args: threading.ExceptHookArgs) -> None:
        if not is_disk_full(args.exc_value):
            previous(args)

    hook.kta_quiet = True  # type: ignore[attr-defined]
    threading.excepthook = hook


class TensorBoard:
    """A SummaryWriter, or nothing at all when logging is off (same calls either way).

    A full disk is one KtaError (see run_folder.disk_full_error); the writer is dropped then, so
    closing it at the end does not report it twice."""

    def __init__(self, log_dir: Path | None) -> None:
        self.writer = None
        self.log_dir = log_dir
        if log_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            quiet_disk_full_in_writer_threads()
            with self.disk_full():
                self.writer = SummaryWriter(log_dir=str(log_dir))

    @contextlib.contextmanager
    def disk_full(self) -> Any:
        assert self.log_dir is not None
        try:
            with disk_full_reported(
                self.log_dir,
                lambda: "records of a few kB",
                what=f"TensorBoard events in {self.log_dir}",
            ):
                yield
        except KtaError:
            self.writer = None  # broken: TensorBoard would raise the same error again
            raise

    def scalars(self, values: dict[str, float], step: int, prefix: str = "") -> None:
        if self.writer is not None:
            with self.disk_full():
                for key, value in values.items():
                    self.writer.add_scalar(f"{prefix}{key}", value, step)

    def images(self, tag: str, images: Any, step: int = 0) -> None:
        if self.writer is not None:
            from torchvision.utils import make_grid

            grid = make_grid(images[:64].float(), nrow=8, normalize=True, scale_each=True)
            with self.disk_full():
                self.writer.add_image(tag, grid, step)

    def figure(self, tag: str, figure: Any, step: int = 0) -> None:
        if self.writer is not None:
            with self.disk_full():
                self.writer.add_figure(tag, figure, step)

    def hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        if self.writer is not None:
            plain = {
                k: v if isinstance(v, (int, float, str, bool)) else str(v)
                for k, v in hparams.items()
            }
            with self.disk_full():
                self.writer.add_hparams(plain, metrics, run_name=".")

    def close(self) -> None:
        if self.writer is not None:
            with self.disk_full():
                self.writer.flush()  # raises what the writer thread met; close() would not
                self.writer.close()


class TrainingReporter:
    """Progress bars on the console and scalars in TensorBoard; silent on ranks other than 0."""

    def __init__(
        self,
        tensorboard: TensorBoard,
        *,
        enabled: bool = True,
        progress: bool = True,
        log_every: int = 10,
    ) -> None:
        self.tb, self.enabled, self.log_every = tensorboard, enabled, log_every
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f} acc {task.fields[acc]:.3f}"),
            TextColumn("{task.fields[ips]:.0f} img/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
            disable=not (enabled and progress),
        )
        self.task_id: Any = None
        self.epoch_start = time.perf_counter()

    def on_fit_start(self, trainer: Any, steps_per_epoch: int) -> None:
        self.steps_per_epoch = steps_per_epoch
        self.progress.start()

    def on_epoch_start(self, trainer: Any, epoch: int, start_batch: int) -> None:
        self.epoch_start, self.epoch_images = time.perf_counter(), 0
        if self.task_id is not None:
            self.progress.remove_task(self.task_id)
        self.task_id = self.progress.add_task(
            f"epoch {epoch + 1}/{trainer.settings.epochs}",
            total=self.steps_per_epoch,
            completed=start_batch,
            loss=float("nan"),
            acc=float("nan"),
            ips=0.0,
        )

    def on_step(self, trainer: Any, values: dict[str, float], batch_size: int) -> None:
        if not self.enabled:
            return
        self.epoch_images += batch_size
        ips = self.epoch_images / max(time.perf_counter() - self.epoch_start, 1e-9)
        self.progress.update(
            self.task_id,
            advance=1,
            loss=values.get("loss", float("nan")),
            acc=values.get("acc", float("nan")),
            ips=ips,
        )
        step = trainer.state.step
        if step % self.log_every == 0:
            self.tb.scalars({k: v for k, v in values.items()}, step, prefix="step/")
            for i, group in enumerate(trainer.optimizer.param_groups):
                self.tb.scalars({f"lr/group{i}": group["lr"]}, step)

    def on_epoch_end(self, trainer: Any, record: dict[str, float], improved: bool) -> None:
        if not self.enabled:
            return
        epoch = int(record["epoch"])
        for key, value in record.items():
            if key == "epoch":
                continue
            split, _, name = key.partition("_")
            tag = f"{split}/{name}" if split in ("train", "val") else f"epoch/{key}"
            self.tb.scalars({tag: value}, epoch)
        mark = " [green]best[/green]" if improved else ""
        parts = [
            f"{k}={v:.4f}"
            for k, v in record.items()
            if k.startswith(
                ("train_loss", "train_acc", "val_loss", "val_acc", "val_knn", "val_robust_acc")
            )
        ]
        self.progress.console.print(
            f"epoch {epoch}: " + " ".join(parts) + f" ({record['images_per_sec']:.0f} img/s){mark}"
        )

    def on_fit_end(self, trainer: Any) -> None:
        self.progress.stop()


def summary_table(title: str, rows: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in rows.items():
        text = f"{value:.4f}" if isinstance(value, float) else str(value)
        table.add_row(key, text)
    return table


def print_table(title: str, rows: dict[str, Any]) -> None:
    console.print(summary_table(title, rows))
