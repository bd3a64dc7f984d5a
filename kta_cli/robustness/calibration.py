"""How far a classifier's confidence can be trusted: ECE, NLL, Brier, reliability bins, and
post-hoc temperature scaling (Guo et al. 2017, "On calibration of modern neural networks").

Pure functions on logits or probabilities. Written by hand: each is a few lines of torch, and the
libraries that have them (torchmetrics, netcal) would be a dependency for a dozen lines.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ReliabilityBins:
    """Equal-width confidence bins over [0, 1]: bin b holds confidences in (b/B, (b+1)/B]
    (bin 0 also holds 0). Empty bins have count 0 and accuracy = confidence = 0."""

    edges: list[float]  # B + 1 edges, 0 ... 1
    counts: list[int]
    accuracy: list[float]  # fraction correct among the bin's predictions
    confidence: list[float]  # mean top-class probability in the bin


def reliability_bins(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> ReliabilityBins:
    """Bin each prediction by its top-class probability; per bin: count, accuracy, confidence."""
    confidence, predicted = probs.max(dim=1)
    correct = (predicted == labels).double()
    # ceil(c * B) - 1 puts c in (b/B, (b+1)/B] into bin b; c == 0 goes to bin 0
    index = (torch.ceil(confidence.double() * bins).long() - 1).clamp(0, bins - 1)
    counts = torch.bincount(index, minlength=bins)
    correct_sum = torch.bincount(index, weights=correct, minlength=bins)
    confidence_sum = torch.bincount(index, weights=confidence.double(), minlength=bins)
    safe = counts.clamp(min=1).double()
    return ReliabilityBins(
        edges=torch.linspace(0, 1, bins + 1).tolist(),
        counts=counts.tolist(),
        accuracy=(correct_sum / safe).tolist(),
        confidence=(confidence_sum / safe).tolist(),
    )


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    """ECE = sum over bins of (bin count / N) * |accuracy - confidence| (Naeini et al. 2015)."""
    binned = reliability_bins(probs, labels, bins)
    total = max(sum(binned.counts), 1)
    return sum(
        count / total * abs(acc - conf)
        for count, acc, conf in zip(binned.counts, binned.accuracy, binned.confidence, strict=True)
    )


def negative_log_likelihood(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean -log p(true class), from logits (log_softmax: no log(0) for a confident softmax)."""
    return torch.nn.functional.cross_entropy(logits.double(), labels).item()


def brier_score(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean over images of sum over classes (p_k - [k == y])^2: Brier's original multi-class
    score, in [0, 2] (some authors divide by the class count; we do not)."""
    one_hot = torch.nn.functional.one_hot(labels, probs.shape[1]).to(probs.dtype)
    return ((probs - one_hot) ** 2).sum(dim=1).mean().item()


def calibration_scores(logits: torch.Tensor, labels: torch.Tensor, bins: int) -> dict[str, float]:
    """ECE, NLL and Brier score of one set of logits."""
    probs = logits.double().softmax(dim=1)
    return {
        "ece": expected_calibration_error(probs, labels, bins),
        "nll": negative_log_likelihood(logits, labels),
        "brier": brier_score(probs, labels),
    }


def has_temperature_optimum(logits: torch.Tensor, labels: torch.Tensor) -> bool:
    """Whether NLL(T) has a minimum at some T > 0: only if some held-out image is misclassified.
    With every one right, sharpening only helps, the NLL keeps falling as T -> 0, and a fit
    would return a tiny T that makes the scored split's few errors enormously confident."""
    return bool((logits.argmax(dim=1) != labels).any())


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, max_iter: int = 100) -> float:
    """The single temperature T > 0 minimising NLL of softmax(logits / T) (Guo et al. 2017).

    Fit on held-out (validation) logits, never on the split being scored. T is optimised as
    log T so it stays positive; dividing by T > 0 never changes the argmax, so accuracy is kept.
    """
    if len(labels) == 0:
        raise ValueError("temperature scaling needs at least one held-out example")
    if not has_temperature_optimum(logits, labels):
        raise ValueError("every held-out example is classified correctly: no temperature optimum")
    logits, labels = logits.detach().double(), labels.detach()
    log_temperature = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [log_temperature], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_temperature.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_temperature.exp().item())


@dataclass
class CalibrationReport:
    scores: dict[str, float]  # ece, nll, brier (and temperature, *_scaled when fitted)
    bins: ReliabilityBins
    scaled_bins: ReliabilityBins | None  # after temperature scaling


def calibration_report(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    bins: int,
    held_out: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> CalibrationReport:
    """Scores of `logits`, and when `held_out` (validation logits, labels) is given, the
    temperature fitted there and the scores of logits / T on the same images."""
    scores = calibration_scores(logits, labels, bins)
    binned = reliability_bins(logits.double().softmax(dim=1), labels, bins)
    if held_out is None:
        return CalibrationReport(scores, binned, None)
    temperature = fit_temperature(*held_out)
    scaled = logits / temperature
    after = calibration_scores(scaled, labels, bins)
    scores = {
        **scores,
        "temperature": temperature,
        **{f"{key}_scaled": value for key, value in after.items()},
    }
    scaled_bins = reliability_bins(scaled.double().softmax(dim=1), labels, bins)
    return CalibrationReport(scores, binned, scaled_bins)
