"""Every user mistake with `kta quantize` is one line on stderr and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.compress.conftest import QUANT_FAST


def error_line(result) -> str:
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    lines = [line for line in result.err.splitlines() if line.startswith("kta quantize: error:")]
    assert len(lines) == 1, result.err
    return lines[0]


def test_missing_checkpoint(kta):
    line = error_line(kta("quantize", "ckpt=nowhere/best.ckpt", *QUANT_FAST))
    assert "checkpoint not found: nowhere/best.ckpt" in line


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("quant.calib_batches=0", "quant.calib_batches must be >= 1"),
        ("quant.observer=minmx", "did you mean 'minmax'"),
        ("quant.backend=pt2e", "did you mean 'pt2e_x86'"),
        ("quant.mode=int4", "quant.mode must be one of static, dynamic, fp16, bf16, got 'int4'"),
        ("quant.qat_epochs=-1", "quant.qat_epochs must be >= 0"),
        ("measure.threads=0", "measure.threads must be > 0"),
        (
            "quant.backend=fx_x86 quant.observer=percentile",
            "percentile needs quant.backend=pt2e_x86",
        ),
    ],
)
def test_bad_settings_are_refused_before_any_work(kta, override: str, expected: str):
    line = error_line(kta("quantize", "ckpt=nowhere.ckpt", *QUANT_FAST, *override.split()))
    assert expected in line


def test_an_already_quantized_checkpoint_is_refused(kta, quant_static_run: Path):
    line = error_line(kta("quantize", f"ckpt={quant_static_run / 'model.ckpt'}", *QUANT_FAST))
    assert "already quantized" in line


def test_a_class_count_mismatch_is_refused_before_calibrating(kta, quant_trained_ckpt: Path):
    """A 10-class digits model calibrated and scored on 6-class shapes would report noise and
    record shapes as its data (then kta eval on it refuses): refuse it, as eval and prune do."""
    line = error_line(
        kta(
            "quantize", f"ckpt={quant_trained_ckpt}", *QUANT_FAST, "data=shapes", "data.img_size=16"
        )
    )
    assert "the checkpoint has 10 classes, the data 6" in line
