"""Hinton's bias check for the class left out of the transfer set, on hand-made logits."""

import pytest
import torch
from torch import nn

from kta_cli.data.loaders import InMemoryLoader
from kta_cli.distill.report import bias_adjusted

# The "model" returns its input as logits. Class-1 examples score [2, 1.5]: class 1 needs a shift
# above 0.5 (at exactly 0.5 the tie goes to class 0); class-0 examples [2, 0] stay right up to 2.
LOGITS = torch.tensor([[2.0, 1.5], [2.0, 1.5], [2.0, 0.0], [2.0, 0.0]])
LABELS = torch.tensor([1, 1, 0, 0])


def test_smallest_shift_that_recovers_the_omitted_class():
    loader = InMemoryLoader(LOGITS, LABELS, batch_size=2, shuffle=False)
    result = bias_adjusted(nn.Identity(), loader, loader, cls=1, device=torch.device("cpu"))
    assert result["omitted_class_bias_shift"] == pytest.approx(0.75)
    assert result["omitted_class_test_acc_bias_adjusted"] == pytest.approx(1.0)
    assert result["test_acc_bias_adjusted"] == pytest.approx(1.0)
