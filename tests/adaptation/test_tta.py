"""AdaBN moves only BatchNorm running statistics; TENT moves only BatchNorm affine parameters."""

import pytest
import timm
import torch
from torch import nn

from kta_cli.adaptation.tta import adabn, batchnorm_layers, entropy, require_batchnorm, tent
from kta_cli.errors import KtaError

CPU = torch.device("cpu")


def model_and_batches():
    torch.manual_seed(0)
    model = timm.create_model("test_resnet", num_classes=4).eval()
    target = [torch.randn(8, 3, 16, 16) * 2 + 1 for _ in range(3)]  # shifted statistics
    return model, (lambda: iter(target)), target


def split_state(model: nn.Module) -> tuple[dict, dict]:
    """(parameters, buffers) copied."""
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    return params, buffers


def test_adabn_changes_only_batchnorm_running_statistics_to_the_targets():
    model, batches, target = model_and_batches()
    params, buffers = split_state(model)
    adabn(model, batches, CPU)
    after_params, after_buffers = split_state(model)
    assert all(torch.equal(params[k], after_params[k]) for k in params)  # no weight moves
    changed = {k for k in buffers if not torch.equal(buffers[k], after_buffers[k])}
    assert changed and all(k.endswith(("running_mean", "running_var", "num_batches_tracked"))
                           for k in changed)  # fmt: skip
    # the first BatchNorm (conv1.1) sees the first conv's output: its new mean is that
    # output's mean, averaged over the three batches (equal sizes: the mean of all pixels)
    first = batchnorm_layers(model)[0]
    with torch.no_grad():
        stem = torch.cat([model.conv1[0](x) for x in target])  # the first conv
    assert torch.allclose(first.running_mean, stem.mean(dim=(0, 2, 3)), atol=1e-5)
    assert not model.training and first.momentum == 0.1  # left as a normal eval model


def test_tent_changes_only_batchnorm_affine_parameters_and_lowers_entropy():
    model, batches, target = model_and_batches()
    adabn(model, batches, CPU)  # so the entropy before and after is measured the same way
    with torch.no_grad():
        before = entropy(torch.cat([model(x) for x in target]))
    params, _ = split_state(model)
    bn_affine = {f"{name}.{p}" for name, m in model.named_modules()
                 if isinstance(m, nn.BatchNorm2d) for p in ("weight", "bias")}  # fmt: skip
    model, online = tent(model, batches, CPU, epochs=3, lr=1e-2)
    after_params, _ = split_state(model)
    changed = {k for k in params if not torch.equal(params[k], after_params[k])}
    assert changed and changed <= bn_affine
    assert len(online) == 3 and all(len(p) == 8 for p in online)
    with torch.no_grad():
        assert entropy(torch.cat([model(x) for x in target])) < before


def test_entropy_by_hand():
    # two classes at equal logits: ln 2; one certain prediction: ~0
    assert entropy(torch.zeros(1, 2)).item() == pytest.approx(0.693147, abs=1e-6)
    assert entropy(torch.tensor([[50.0, 0.0]])).item() == pytest.approx(0.0, abs=1e-6)


def test_a_model_without_batchnorm_is_refused_naming_what_applies():
    vit = timm.create_model("test_vit", num_classes=4)
    with pytest.raises(KtaError, match="no BatchNorm layers, so method=tent does not apply.*dann"):
        require_batchnorm(vit, "tent", "vit.ckpt")
