"""Calibration observers on hand-made data: min-max keeps the outlier, percentile saturates it."""

from __future__ import annotations

import pytest
import torch

from kta_cli.compress.observers import PercentileObserver, activation_observer, observer_class
from kta_cli.errors import KtaError

# 1000 values evenly spread over [0, 0.999] and one outlier at 100
BULK = torch.arange(1000, dtype=torch.float32) / 1000
WITH_OUTLIER = torch.cat([BULK, torch.tensor([100.0])])


def qparams(name: str, *batches: torch.Tensor, **kwargs: float) -> tuple[float, int]:
    observer = activation_observer(name, **kwargs)()
    for batch in batches:
        observer(batch)
    scale, zero_point = observer.calculate_qparams()
    return float(scale), int(zero_point)


def test_minmax_scale_spans_the_outlier():
    scale, zero_point = qparams("minmax", WITH_OUTLIER)
    # uint8 affine over [0, 100]: one step is 100 / 255, zero maps to 0
    assert scale == pytest.approx(100 / 255, rel=1e-5)
    assert zero_point == 0


def test_percentile_scale_saturates_the_outlier():
    scale, zero_point = qparams("percentile", WITH_OUTLIER, percentile=99.0)
    # 1001 sorted values, linear interpolation: the 99th percentile is element 990 = 0.990 and
    # the 1st is element 10 = 0.010; the range is widened to include 0, so [0, 0.99]
    assert scale == pytest.approx(0.990 / 255, rel=1e-4)
    assert zero_point == 0


def test_percentile_error_on_the_bulk_is_far_smaller_than_minmax():
    def bulk_error(name: str) -> float:
        scale, zero_point = qparams(name, WITH_OUTLIER, percentile=99.0)
        q = torch.fake_quantize_per_tensor_affine(BULK, scale, zero_point, 0, 255)
        return (q - BULK).abs().max().item()

    assert bulk_error("minmax") > 0.15  # half of a 0.39 step
    assert bulk_error("percentile") < 0.01  # half of a 0.0039 step, plus the clipped tail


def test_percentile_averages_over_batches():
    observer = PercentileObserver(percentile=100.0)
    observer(torch.tensor([0.0, 2.0]))
    observer(torch.tensor([0.0, 4.0]))
    assert float(observer.max_val) == pytest.approx(3.0)  # mean of the batch maxima 2 and 4


def test_unknown_observer_suggests_the_right_name():
    with pytest.raises(KtaError, match="did you mean 'minmax'"):
        observer_class("minmx")


def test_percentile_out_of_range_is_refused():
    with pytest.raises(KtaError, match="quant.percentile"):
        PercentileObserver(percentile=30.0)
