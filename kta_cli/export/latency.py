"""The latency table of `kta export`: every runtime on the same images, interleaved rounds,
medians (report/measure.py), at a fixed thread count set by the caller."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from rich.table import Table
from torch import nn

from kta_cli.compress.quantized import compiled_float
from kta_cli.export.onnx import export_onnx, quiet
from kta_cli.report.measure import interleaved_latency_ms

Runner = Callable[[torch.Tensor], Any]


def batch_of(images: torch.Tensor, size: int) -> torch.Tensor:
    """`size` real images (repeated when there are fewer) as one contiguous batch."""
    repeats = -(-size // max(len(images), 1))
    return images.repeat(repeats, 1, 1, 1)[:size].contiguous()


def compiled_runner(
    model: nn.Module, examples: list[torch.Tensor], aoti: bool | str = False
) -> tuple[Runner | None, str]:
    """`model` compiled as `kta quantize` builds its float baseline (inductor, freezing, one
    static graph per batch size; AOTInductor for the shapes `aoti` names, as the int8 row's
    program does), warmed up at every batch size (compiling is not latency), or None and the
    reason when compiling fails on this machine (no C compiler, an unsupported op)."""
    with quiet():
        runner, took = compiled_float(model, examples, aoti=aoti)
    return (None, took) if runner is None else (runner, f"compiled in {took:.1f} s")


def onnxruntime_runners(
    models: dict[str, nn.Module], example: torch.Tensor, folder: Path, threads: int
) -> dict[str, Runner]:
    """Each model exported to ONNX in `folder` as `kta export` writes it (dynamic batch, the
    dynamo exporter or its fallback) and loaded in an onnxruntime CPU session: how another
    command times a model in the runtime it would be deployed to. KtaError when one does not
    export (its reasons)."""
    from kta_cli.export.parity import onnx_runner

    runners = {}
    for name, model in models.items():
        path = folder / f"{name}.onnx"
        export_onnx(model, batch_of(example, 2), path, name=f"the {name} model", fallback="")
        runners[name] = onnx_runner(path, threads)
    return runners


def latency_table(
    runs: dict[str, Runner],
    images: torch.Tensor,
    batch_sizes: list[int],
    *,
    rounds: int,
    repeats: int,
) -> dict[str, dict[str, float]]:
    """runtime -> {"batch<N>": median ms}."""
    table: dict[str, dict[str, float]] = {name: {} for name in runs}
    for size in batch_sizes:
        measured = interleaved_latency_ms(
            runs, batch_of(images, size), rounds=rounds, repeats=repeats
        )
        for name, milliseconds in measured.items():
            table[name][f"batch{size}"] = milliseconds
    return table


def ratios(table: dict[str, dict[str, float]], baseline: str) -> dict[str, dict[str, float]]:
    """Each runtime's latency over `baseline`'s, per batch size (< 1: faster)."""
    base = table.get(baseline, {})
    return {
        name: {column: value / base[column] for column, value in row.items() if base.get(column)}
        for name, row in table.items()
    }


def rich_table(
    title: str, table: dict[str, dict[str, float]], skipped: dict[str, str], baseline: str
) -> Table:
    columns = sorted({c for row in table.values() for c in row}, key=lambda c: int(c[5:]))
    out = Table(title=title, header_style="bold")
    out.add_column("runtime")
    for column in columns:
        out.add_column(f"{column} ms", justify="right")
        out.add_column(f"/ {baseline}", justify="right")
    relative = ratios(table, baseline)
    for name, row in table.items():
        cells = []
        for column in columns:
            cells += [f"{row[column]:.3f}", f"{relative[name].get(column, float('nan')):.2f}"]
        out.add_row(name, *cells)
    for name, reason in skipped.items():
        out.add_row(name, *(["n/a"] * 2 * len(columns)), end_section=False)
        out.add_row(f"  ({reason[:90]})", *([""] * 2 * len(columns)))
    return out


def measure_latency(
    model: nn.Module,
    files: dict[str, Any],
    images: torch.Tensor,
    settings: dict[str, Any],
    extra: dict[str, Runner] | None = None,
    aoti: bool | str = False,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The table for torch eager, torch compiled (when it compiles; `aoti` as the int8 row's
    program), each ONNX file under onnxruntime and `extra` rows (kta's int8 program), its ratios
    against eager and compiled float, and the rows left out, why."""
    from kta_cli.export.parity import onnx_runner

    runs: dict[str, Runner] = {"torch_eager": model}
    skipped: dict[str, str] = {}
    if settings["compile"]:
        examples = [batch_of(images, size) for size in settings["batch_sizes"]]
        compiled, why = compiled_runner(model, examples, aoti)
        if compiled is None:
            skipped["torch_compiled"] = why
        else:
            runs["torch_compiled"] = compiled
    for kind, path in files.items():
        runs[f"onnxruntime_{kind}"] = onnx_runner(path, settings["threads"])
    runs.update(extra or {})
    table = latency_table(
        runs,
        images,
        settings["batch_sizes"],
        rounds=settings["rounds"],
        repeats=settings["repeats"],
    )
    return {
        "latency_ms": table,
        "latency_ratio_vs_eager": ratios(table, "torch_eager"),
        "latency_ratio_vs_compiled": ratios(table, "torch_compiled")
        if "torch_compiled" in runs
        else None,
        "latency_skipped": skipped,
        "torch_compiled_aoti": aoti if "torch_compiled" in runs else None,  # which shapes by AOTI
    }, skipped
