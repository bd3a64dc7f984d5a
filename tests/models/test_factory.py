"""Building models: typos, offline hub weights, local weights with head replacement, init."""

import time
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from kta_cli.engine.checkpoint import load_checkpoint, save_checkpoint
from kta_cli.errors import KtaError
from kta_cli.loading import build_model, load_weights
from kta_cli.models.factory import create_model, init_weights
from tests.settings import TINY


def tiny(num_classes: int = 10):
    return create_model("test_resnet", num_classes=num_classes)


def test_typo_gets_did_you_mean():
    with pytest.raises(KtaError, match="did you mean 'resnet18'"):
        create_model("resnt18", num_classes=3)


def test_pretrained_offline_is_a_clear_error(monkeypatch):
    def offline(*args, **kwargs):
        if kwargs.get("pretrained"):
            raise OSError("We couldn't connect to huggingface.co")
        return timm.create_model(*args, **kwargs)

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(KtaError, match="model.checkpoint"):
        create_model("test_resnet", num_classes=3, pretrained=True)


def test_pretrained_with_the_hub_unreachable_fails_at_once_with_one_line(
    kta, monkeypatch, tmp_path: Path
):
    from huggingface_hub import constants

    # nothing listens on the discard port: the probe is refused, as with no network at all
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    started = time.perf_counter()
    with pytest.raises(KtaError, match="unreachable"):
        create_model("test_resnet", num_classes=3, pretrained=True)
    assert time.perf_counter() - started < 5  # was 53 s of hub retries
    result = kta("train", *TINY, "model.pretrained=true")
    assert (
        result.code == 2 and "not cached" in result.err and "model.checkpoint=<path>" in result.err
    )
    shown = [line for line in (result.out + result.err).splitlines() if line.strip()]
    assert len(shown) == 1 and "http" not in shown[0]


def test_head_is_replaced_when_class_count_differs(tmp_path: Path):
    source = tiny(5)
    torch.save(source.state_dict(), tmp_path / "weights.pth")
    target = tiny(10)
    report = load_weights(target, tmp_path / "weights.pth")
    assert report["replaced"] == ["fc.weight", "fc.bias"] and not report["missing"]
    assert torch.equal(target.conv1[0].weight, source.conv1[0].weight)
    assert target.fc.weight.shape[0] == 10


@pytest.mark.parametrize("kind", ["safetensors", "state_dict_nested", "kta"])
def test_every_local_weight_format_loads(tmp_path: Path, kind: str):
    source = tiny(10)
    state = source.state_dict()
    if kind == "safetensors":
        path = tmp_path / "w.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    elif kind == "state_dict_nested":
        path = tmp_path / "w.pt"
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    else:
        path = save_checkpoint(tmp_path / "w.ckpt", {"model": state})
    target = tiny(10)
    report = load_weights(target, path)
    assert not report["missing"] and not report["replaced"]
    assert all(torch.equal(target.state_dict()[k], v) for k, v in state.items())


def test_weights_of_another_architecture_are_refused(tmp_path: Path):
    torch.save(create_model("test_vit", num_classes=10).state_dict(), tmp_path / "vit.pth")
    with pytest.raises(KtaError, match="another architecture"):
        load_weights(tiny(10), tmp_path / "vit.pth")


@pytest.mark.parametrize("scheme", ["kaiming", "xavier", "orthogonal"])
def test_init_schemes_reinitialise_conv_weights(scheme: str):
    model = tiny(3)
    before = model.conv1[0].weight.clone()
    init_weights(model, scheme)
    assert not torch.equal(before, model.conv1[0].weight)
    if scheme == "orthogonal":
        flat = model.fc.weight  # rows of an orthogonal (3 x d) matrix are orthonormal
        assert torch.allclose(flat @ flat.T, torch.eye(3), atol=1e-5)


def test_build_model_from_checkpoint_via_cli_logs_replaced_head(kta, tiny_ckpt):
    # tiny_ckpt has 10 classes; a 3-class target keeps its body and replaces its head
    second = kta(
        "train",
        *TINY,
        "data.classes=[0,1,2]",
        f"model.checkpoint={tiny_ckpt}",
        "trainer.max_steps=2",
    )
    assert second.code == 0, second.err
    log = (second.run_dir() / "train.log").read_text()
    assert "2 replaced (head)" in log and "replaced: fc.weight, fc.bias" in log
    assert load_checkpoint(second.run_dir() / "last.ckpt")["parent"] == str(tiny_ckpt)
    model = build_model("test_resnet", num_classes=3, checkpoint=str(tiny_ckpt))
    assert model.fc.out_features == 3
    source = load_checkpoint(tiny_ckpt)["model"]
    assert torch.equal(model.conv1[0].weight, source["conv1.0.weight"])  # the body was loaded
