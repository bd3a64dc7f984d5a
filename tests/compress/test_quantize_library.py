"""Library-level quantization behaviour: dynamic int8, unquantizable models, unsafe archives."""

from __future__ import annotations

import io
import json
import zipfile
from operator import attrgetter

import pytest
import torch
from torch import nn

from kta_cli.compress.quantize import QuantSettings, quantize
from kta_cli.compress.quantized import check_program_is_data


class Batches(list):
    """(images, labels) batches with the set_epoch a kta loader has."""

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        pass


torch.manual_seed(0)
BATCHES = [(torch.randn(4, 3, 4, 4), torch.zeros(4, dtype=torch.long)) for _ in range(2)]


def mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(48, 32), nn.ReLU(), nn.Linear(32, 10)).eval()


def test_dynamic_int8_quantizes_linear_weights_and_keeps_outputs():
    model = mlp()
    result = quantize(
        model, QuantSettings(mode="dynamic"), train_loader=BATCHES, val_loader=BATCHES
    )
    result.model.use_compile = False
    graph = result.model.graph
    ops = {str(node.target) for node in graph.graph.nodes if node.op == "call_function"}
    assert any("choose_qparams" in op for op in ops)  # activation ranges computed at run time
    attrs = [attrgetter(n.target)(graph) for n in graph.graph.nodes if n.op == "get_attr"]
    int8 = [t for t in [*graph.state_dict().values(), *attrs] if t.dtype == torch.int8]
    assert {tuple(t.shape) for t in int8} >= {(32, 48), (10, 32)}
    images = torch.randn(16, 3, 4, 4)
    similarity = nn.functional.cosine_similarity(model(images), result.model(images)).min()
    assert similarity > 0.99


class NoLayers(nn.Module):
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.mean(dim=(2, 3)).softmax(dim=1)


def test_a_model_without_quantizable_layers_is_named_with_a_suggestion():
    with pytest.raises(
        Exception, match="no operation the x86 static int8 quantizer handles"
    ) as info:
        quantize(NoLayers(), QuantSettings(), train_loader=BATCHES, val_loader=BATCHES, name="pool")
    assert "mean" in str(info.value) and "quant.mode=fp16" in str(info.value)


class DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(48, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.sum() > 0:  # Python control flow on a value: export cannot trace it
            return self.linear(images.flatten(1))
        return -self.linear(images.flatten(1))


def test_a_model_export_cannot_capture_suggests_fp16():
    with pytest.raises(Exception, match="torch.export cannot capture ctrl .*quant.mode=fp16"):
        quantize(
            DataDependent(), QuantSettings(), train_loader=BATCHES, val_loader=BATCHES, name="ctrl"
        )


def test_an_archive_that_would_unpickle_is_refused():
    result = quantize(
        mlp(), QuantSettings(mode="dynamic"), train_loader=BATCHES, val_loader=BATCHES
    )
    data = result.payload["program"].numpy().tobytes()
    check_program_is_data(data)  # the real one passes
    source, tampered = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(tampered, "w") as out:
        for info in source.infolist():
            content = source.read(info.filename)
            if info.filename.endswith("weights_config.json"):
                config = json.loads(content)
                for meta in config["config"].values():
                    meta["use_pickle"] = True
                content = json.dumps(config).encode()
            out.writestr(info, content)
    with pytest.raises(Exception, match="refusing the quantized program"):
        check_program_is_data(tampered.getvalue())


class ConvBn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 10)
        nn.init.zeros_(self.bn.weight)  # as timm's zero-initialised last BN of a residual block

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.bn(self.conv(images)).relu().mean(dim=(2, 3)))


def test_pt2e_qat_graph_trains_finite_even_with_zero_bn_scales():
    # prepare + one training step only: torchao's conversion after QAT re-exports ~120 conv-bn
    # patterns (minutes on a busy 2-core machine); `kta quantize quant.qat_epochs=1` runs it all
    from kta_cli.compress import quantize_pt2e as pt2e

    model = ConvBn().eval()
    images, labels = torch.randn(8, 3, 4, 4), torch.arange(8) % 10
    quantizer = pt2e.build_quantizer("static", qat=True)
    prepared, reference = pt2e.prepare(model, images, quantizer, mode="static", qat=True)
    assert reference is None  # no float reference: QAT moves the weights
    prepared.train()
    loss = nn.functional.cross_entropy(prepared(images), labels)
    loss.backward()
    assert torch.isfinite(loss)
    fake_quant = [m for m in prepared.modules() if type(m).__name__.endswith("FakeQuantize")]
    assert fake_quant and all(torch.isfinite(m.scale).all() for m in fake_quant)
    assert model.bn.weight.abs().sum() == 0  # the source model is left as it was


@pytest.mark.slow  # two AOTInductor builds, about 25 s on 2 cores
def test_aoti_program_keeps_the_outputs_and_builds_once_per_shape():
    """quant.aoti=true: every input shape through AOTInductor (one library a shape); auto, the
    default: batch 1 through AOTInductor and other shapes through torch.compile."""
    from kta_cli.compress.quantized import quantized_model_from_checkpoint

    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(16, 10),
    ).eval()  # fmt: skip
    result = quantize(
        model, QuantSettings(calib_batches=2, sensitivity=False), train_loader=BATCHES,
        val_loader=BATCHES,
    )  # fmt: skip
    result.model.use_compile = False  # the reference: the graph's own ops (compiling costs)
    one, three = torch.randn(1, 3, 4, 4), torch.randn(3, 3, 4, 4)
    for aoti, libraries in ((True, [(3, 3, 4, 4)]), ("auto", [(1, 3, 4, 4)])):
        checkpoint = {**result.payload, "quant": {"backend": "pt2e_x86", "aoti": aoti}}
        program = quantized_model_from_checkpoint(checkpoint)
        assert program.aoti == aoti
        with torch.inference_mode():
            for images in [three] if aoti is True else [one, three]:
                expected, got = result.model(images), program(images)
                assert nn.functional.cosine_similarity(got, expected).min() > 0.99
            program(three + 1)  # same shape: the library (or the graph) is reused
        assert [key[:4] for key in program._runner.ahead.runners] == libraries
        assert (program._runner.compiled is not None) == (aoti == "auto")


def test_inductor_options_are_patched_only_around_a_call_that_may_compile(monkeypatch):
    """FrozenCompiled: freezing is patched in for the first call of each kind of input (where
    dynamo compiles), not around every call (that cost 0.1 ms of a 0.9 ms batch-1 call)."""
    from kta_cli.compress.quantized import FrozenCompiled

    patched: list[dict] = []
    config_type = type(torch._inductor.config)  # a config module refuses attributes of its own
    real = config_type.patch

    def counting(self, *args, **options):
        if "freezing" in options:  # ours; dynamo patches other options of its own
            patched.append(options)
        return real(self, *args, **options)

    monkeypatch.setattr(config_type, "patch", counting)
    model = nn.Linear(4, 2).eval()
    run = FrozenCompiled(model)
    three, five = torch.randn(3, 4), torch.randn(5, 4)
    with torch.inference_mode():
        assert torch.allclose(run(three), model(three))
        run(three)
        run(three + 1)  # the same kind of input: no patch, no compile
        assert len(patched) == 1 and patched[0]["freezing"] is True
        run(five)  # a new shape compiles again, inside the patch
        assert len(patched) == 2
    with torch.no_grad():  # outside inference mode dynamo's guards differ: compiled again
        assert torch.allclose(run(three), model(three))
    assert len(patched) == 3
