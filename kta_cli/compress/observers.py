"""Calibration observers: how a static int8 range is chosen from the activations seen.

minmax          the full observed range: no value saturates, but one outlier stretches the scale.
moving_average  min and max averaged over batches (torch's MovingAverageMinMaxObserver).
histogram       torch's HistogramObserver: a histogram, then the range that minimises the L2
                quantization error (saturating rare large values).
percentile      the p-th and (100-p)-th percentiles: everything beyond saturates.

All are torchao pt2e observer classes, so the pt2e quantizer takes them as they are.
"""

from __future__ import annotations

from typing import Any

import torch
from torchao.quantization.pt2e.observer import (
    HistogramObserver,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
)

from kta_cli.errors import KtaError, did_you_mean

# torch.quantile refuses inputs above 2**24 elements; a strided subsample keeps it exact enough.
_QUANTILE_SAMPLE = 1 << 20


class PercentileObserver(MinMaxObserver):
    """Range from the p-th percentiles of each batch, averaged over the calibration batches.

    Written here because neither torch nor torchao ships a percentile observer.
    """

    def __init__(self, percentile: float = 99.99, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 50.0 < percentile <= 100.0:
            raise KtaError(f"quant.percentile must be in (50, 100], got {percentile}")
        self.percentile = percentile
        self.register_buffer("batches", torch.tensor(0, dtype=torch.long))

    def forward(self, x_orig: torch.Tensor) -> torch.Tensor:
        if x_orig.numel() == 0:
            return x_orig
        x = x_orig.detach().flatten().to(self.min_val.dtype)
        if x.numel() > _QUANTILE_SAMPLE:
            x = x[:: x.numel() // _QUANTILE_SAMPLE + 1]
        q = torch.tensor([1.0 - self.percentile / 100.0, self.percentile / 100.0], dtype=x.dtype)
        low, high = torch.quantile(x, q)
        n = int(self.batches)
        if n == 0:
            self.min_val.copy_(low)
            self.max_val.copy_(high)
        else:  # running mean over batches, as TensorRT-style percentile calibration does
            self.min_val.copy_((self.min_val * n + low) / (n + 1))
            self.max_val.copy_((self.max_val * n + high) / (n + 1))
        self.batches += 1
        return x_orig


OBSERVERS: dict[str, type] = {
    "minmax": MinMaxObserver,
    "moving_average": MovingAverageMinMaxObserver,
    "histogram": HistogramObserver,
    "percentile": PercentileObserver,
}


def observer_class(name: str) -> type:
    """The activation observer class for a `quant.observer` name (did-you-mean on typos)."""
    if name not in OBSERVERS:
        raise KtaError(did_you_mean(name, OBSERVERS, what="observer (quant.observer)"))
    return OBSERVERS[name]


def activation_observer(name: str, percentile: float = 99.99) -> Any:
    """A constructor (`with_args`) for the observer `name`; eps as in torch's x86 defaults."""
    cls = observer_class(name)
    kwargs: dict[str, Any] = {"eps": 2**-12}
    if cls is PercentileObserver:
        kwargs["percentile"] = percentile
    return cls.with_args(**kwargs)
