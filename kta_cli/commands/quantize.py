"""`kta quantize ckpt=...`: int8 (or fp16/bf16) for x86 CPUs, saved as data, measured.

The work is kta_cli/compress/quantize.py (QAT through the run builder, engine/finetune.py);
measuring and writing, kta_cli/compress/quantize_report.py.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from omegaconf import DictConfig

from kta_cli.compress.quantize import QuantSettings, quantize
from kta_cli.compress.quantize_report import (
    MeasureSettings,
    example_batch,
    measure,
    reload_agreement,
    report,
    save_quantized,
    sizes,
)
from kta_cli.compress.quantized import QuantizedProgram
from kta_cli.compress.steps import compression_step
from kta_cli.data.datasets import build_data, spec_from_dict
from kta_cli.engine.checkpoint import float_only, load_checkpoint, resolve_checkpoint
from kta_cli.engine.evaluate import scored_data
from kta_cli.engine.state import seed_everything
from kta_cli.errors import KtaError
from kta_cli.loading import model_from_checkpoint
from kta_cli.report.run_folder import config_as_dict, current_run_dir
from kta_cli.schema.store import section


def settings_from(cfg: DictConfig) -> QuantSettings:
    values = section(cfg, "quant")
    values.pop("compile", None)  # how the program runs, not how it is made
    values.pop("aoti", None)
    settings = QuantSettings(**values)
    settings.check()
    return settings


def backend_of(cfg: DictConfig) -> str:
    return "cast" if cfg.quant.mode in ("fp16", "bf16") else cfg.quant.backend


def way_around(model: torch.nn.Module) -> str:
    """What avoids a failure while the quantized model is compiled and timed."""
    if not getattr(model, "use_compile", False):  # fx_x86, fp16/bf16, or an uncompiled graph
        return "pass measure.latency=false to skip the timing"
    if getattr(model, "aoti", False):
        return "pass quant.aoti=false (torch.compile only), or quant.compile=false (reference ops)"
    return "pass quant.compile=false (reference ops, slow)"


def run(cfg: DictConfig) -> dict[str, Any]:
    settings = settings_from(cfg)
    if cfg.quant.aoti is True and (not cfg.quant.compile or backend_of(cfg) != "pt2e_x86"):
        raise KtaError(
            "quant.aoti=true compiles the pt2e_x86 int8 program ahead of time: it needs "
            f"quant.compile=true and quant.backend=pt2e_x86 (here compile={cfg.quant.compile}, "
            f"backend={backend_of(cfg)})"
        )
    measuring = MeasureSettings(**section(cfg, "measure"))
    torch.set_num_threads(measuring.threads)
    seed_everything(cfg.seed)
    path = resolve_checkpoint(cfg.ckpt, usable=float_only)  # latest: newest float model
    source = load_checkpoint(path)
    if source.get("model_kind") == "quantized":
        raise KtaError(f"{path} is already quantized; quantize its parent: {source.get('parent')}")
    float_model = model_from_checkpoint(source).eval()
    values = scored_data(cfg, source)
    data = build_data(spec_from_dict(values))
    classes = source["model_args"]["num_classes"]
    if len(data.class_names) != classes:  # calibrating and scoring on other classes is noise
        raise KtaError(
            f"the checkpoint has {classes} classes, the data {len(data.class_names)}; "
            "pick data.classes to match (or quantize on the data it was trained on)"
        )
    name = source["model_args"]["name"]

    started = time.perf_counter()
    result = quantize(
        float_model, settings, train_loader=data.train, val_loader=data.val, name=name
    )
    if isinstance(result.model, QuantizedProgram):
        result.model.use_compile = cfg.quant.compile
        result.model.use_aoti = cfg.quant.aoti
    metrics: dict[str, Any] = {
        "checkpoint": str(path),
        "mode": cfg.quant.mode,
        "backend": backend_of(cfg),
        "quantize_seconds": time.perf_counter() - started,
    }
    with compression_step("compiling and timing the int8 program", way_around(result.model)):
        metrics.update(measure(float_model, result.model, data.test, measuring))
    run_dir = current_run_dir()
    saved = save_quantized(
        run_dir / "model.ckpt",
        source=source,
        parent=path,
        result=result,
        quant={**section(cfg, "quant"), "backend": backend_of(cfg)},
        config={**config_as_dict(cfg), "data": values},
        metrics=metrics,
    )
    metrics.update(sizes(float_model, result.model, saved))
    # uncompiled: the check is about what was saved, and compiling twice costs time; on a
    # batch shape the program has already compiled (each new shape compiles again)
    reloaded = model_from_checkpoint(load_checkpoint(saved), compile=False)
    metrics["reload_agreement"] = reload_agreement(
        reloaded, result.model, example_batch(data.test, measuring.batch_size)
    )
    metrics["kept_float"] = result.kept_float
    if result.qat_history:
        metrics["qat_val_acc"] = result.qat_history[-1].get("val_acc")
    title = f"kta quantize: {name} on {data.spec.name} ({cfg.quant.mode}, {metrics['backend']})"
    report(run_dir, metrics, result, title=title, tensorboard=bool(cfg.logger.tensorboard))
    return metrics
