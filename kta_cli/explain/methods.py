"""The attribution methods by name: a small table over captum's classes (plus Grad-CAM++).

Every method maps (images, target classes) to a (B, H, W) heatmap at input resolution; larger
means "more evidence for the target class". Batches are cut to `batch_size` inside captum
(internal_batch_size, perturbations_per_eval, nt_samples_batch_size) so memory stays bounded.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from captum.attr import (
    Deconvolution,
    GradientShap,
    GuidedBackprop,
    GuidedGradCam,
    IntegratedGradients,
    KernelShap,
    LayerAttribution,
    LayerGradCam,
    NoiseTunnel,
    Occlusion,
    Saliency,
)
from torch import nn

from kta_cli.data.transforms import normalize
from kta_cli.errors import KtaError, did_you_mean
from kta_cli.explain.gradcampp import grad_cam_plus_plus
from kta_cli.explain.layers import (
    RECTIFIERS,
    TargetLayer,
    find_layer,
    has_rectifiers,
    prepare_model,
)


@dataclass
class Settings:
    """Per-method knobs (configs/explain.yaml); defaults are sensible at 32-224 px."""

    batch_size: int = 32  # images (or perturbed copies) per forward pass inside a method
    ig_steps: int = 32
    smoothgrad_samples: int = 16
    smoothgrad_noise: float = 0.15  # noise std as a fraction of the input's value range
    occlusion_window: int | None = None  # patch side in pixels; None: a seventh of the image
    occlusion_stride: int | None = None  # None: half the window
    shap_samples: int = 16
    kernel_shap_samples: int = 64
    kernel_shap_cells: int = 8  # kernel SHAP features: a cells x cells grid of squares
    seed: int = 0


class FixedBatch(nn.Module):
    """Runs a compiled int8 program on batches of one size only: shorter batches are padded,
    longer ones cut. torch.compile specialises on the batch size, and an int8 program's compile
    (Inductor freezing, oneDNN kernels) costs far more than its forward passes: explain calls
    the model at many sizes (1-image probes, occlusion's windows x images, the split's last
    batch), which recompiled it each time and made int8 occlusion three times float's time."""

    def __init__(self, model: nn.Module, size: int) -> None:
        super().__init__()
        self.model, self.size = model, size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        outputs = []
        for chunk in images.split(self.size):
            missing = self.size - len(chunk)
            if missing:
                chunk = torch.cat([chunk, chunk[:1].expand(missing, *chunk.shape[1:])])
            outputs.append(self.model(chunk)[: self.size - missing])
        return torch.cat(outputs)


def compiles_per_shape(model: nn.Module) -> bool:
    """A compiled int8 program (compress/quantized.py QuantizedProgram with use_compile)."""
    return bool(getattr(model, "use_compile", False)) and hasattr(model, "graph")


class Explainer:
    """A prepared copy of a model with its target layer, able to run every method."""

    def __init__(
        self,
        model: nn.Module,
        *,
        mean: list[float],
        std: list[float],
        img_size: int,
        layer: str | None = None,
        settings: Settings | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        self.device = torch.device(device)
        self.settings = settings or Settings()
        self._differentiable: bool | None = None
        self.model = prepare_model(model).to(self.device)
        if compiles_per_shape(self.model):
            self.model = FixedBatch(self.model, self.settings.batch_size)
            self._differentiable = False  # an int8 program; probing it would compile again
        self.mean, self.std, self.img_size = mean, std, img_size
        self.layer_name = layer
        self._layers: dict[str | None, TargetLayer] = {}
        if layer is not None:  # a wrong name fails before any work
            self.target_layer(layer)

    def target_layer(self, name: str | None) -> TargetLayer:
        """A layer of the prepared model as a spatial map (None: the automatic choice)."""
        if name not in self._layers:
            example = torch.zeros(1, 3, self.img_size, self.img_size, device=self.device)
            found = self._layers.get(name) or find_layer(self.model, name, example)
            self._layers[name] = self._layers[found.name] = found
        return self._layers[name]

    @property
    def layer(self) -> TargetLayer:
        return self.target_layer(self.layer_name)

    def pixel(self, value: float, like: torch.Tensor) -> torch.Tensor:
        """A constant image (0 black, 0.5 grey) in the model's normalised input space."""
        plain = torch.full((3, *like.shape[-2:]), value, dtype=like.dtype)
        return normalize(plain, self.mean, self.std).to(like.device).expand_as(like).contiguous()

    def reference(self, kind: str, images: torch.Tensor) -> torch.Tensor:
        """What a removed pixel becomes in faithfulness curves: grey, black, or a blurred copy."""
        if kind == "blur":
            from torchvision.transforms.v2.functional import gaussian_blur

            sigma = max(1.0, images.shape[-1] / 16)
            return gaussian_blur(images, [2 * round(2 * sigma) + 1] * 2, [sigma, sigma])
        return self.pixel(0.5 if kind == "grey" else 0.0, images)

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """Logits on the CPU for CPU images, computed on the model's device in batches."""
        with torch.no_grad():
            return torch.cat(
                [
                    self.model(b.to(self.device)).float().cpu()
                    for b in inputs.split(self.settings.batch_size)
                ]
            )

    def check_differentiable(self, method: str) -> None:
        if self._differentiable is None:
            probe = torch.zeros(
                1, 3, self.img_size, self.img_size, device=self.device, requires_grad=True
            )
            with torch.enable_grad():
                self._differentiable = self.model(probe).requires_grad
        if not self._differentiable:
            raise KtaError(
                f"{method} needs gradients, but this model's output does not depend "
                "differentiably on its input (a quantized program?); use occlusion or kernel_shap"
            )

    def explain(self, method: str, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(B, H, W) heatmap of `method` for `targets`; the images are not modified."""
        spec = method_spec(method)
        if spec.gradients:
            self.check_differentiable(method)
        if spec.rectifiers and not has_rectifiers(self.model):
            kinds = ", ".join(k.__name__ for k in RECTIFIERS)
            raise KtaError(
                f"{method} overrides the backward pass of activation modules ({kinds}) and "
                f"{type(self.model).__name__} has none; use saliency or gradcam"
            )
        torch.manual_seed(self.settings.seed)
        with warnings.catch_warnings():  # captum's notes on requires_grad and hooks are noise here
            warnings.simplefilter("ignore", UserWarning)
            images = inputs.detach().to(self.device, copy=True)
            attributions = spec.run(self, images, targets.to(self.device))
        return to_heatmap(attributions, spec.signed, inputs.shape[-2:]).cpu()


def to_heatmap(attributions: torch.Tensor, signed: bool, size: torch.Size) -> torch.Tensor:
    """Channels folded into one map: signed methods sum (positive part), gradient methods take
    the largest magnitude over channels (Simonyan et al.)."""
    attributions = attributions.detach().float()
    if attributions.shape[1] > 1:
        attributions = (
            attributions.sum(dim=1, keepdim=True)
            if signed
            else attributions.abs().amax(dim=1, keepdim=True)
        )
    if attributions.shape[-2:] != size:
        attributions = LayerAttribution.interpolate(attributions, tuple(size), "bilinear")
    heat = attributions[:, 0]
    return heat.clamp(min=0) if signed else heat.abs()


def _saliency(ex: Explainer, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return Saliency(ex.model).attribute(x, target=t, abs=True)


class _Rectified:
    """Captum hooks only nn.ReLU; timm ViTs use GELU, so the same rule is applied to every
    activation module in RECTIFIERS (a documented generalisation of the ReLU rule)."""

    def _register_hooks(self, module: nn.Module) -> None:
        from captum._utils.common import _register_backward_hook

        if isinstance(module, RECTIFIERS):
            self.backward_hooks.extend(_register_backward_hook(module, self._backward_hook, self))


class RectifiedGuidedBackprop(_Rectified, GuidedBackprop):
    pass


class RectifiedDeconvolution(_Rectified, Deconvolution):
    pass


def _deconvnet(ex: Explainer, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return RectifiedDeconvolution(ex.model).attribute(x, target=t)


def _guided_backprop(ex: Explainer, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return RectifiedGuidedBackprop(ex.model).attribute(x, target=t)


def _gradcam(ex: Explainer, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    cam = LayerGradCam(ex.model, ex.layer.module).attribute(x, target=t, relu_attributions=True)
    return LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), "bilinear")


def _gradcam_pp(ex: Explainer, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    cam = grad_cam_plus_plus(ex.model, ex.layer.module, x, t)
    return LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), "bilinear")


def _guided_gradcam(ex: Explainer, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    method = GuidedGradCam(ex.model, ex.layer.module)
    method.guided_backprop = RectifiedGuidedBackprop(ex.model)  # GELU-aware, as above
    return method.attribute(x, target=t)


def _integrated_gradients(ex: Explainer, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return IntegratedGradients(ex.model).attribute(
        x,
        baselines=ex.pixel(0.0, x),
        target=t,
        n_steps=ex.settings.ig_steps,
        internal_batch_size=ex.settings.batch_size,
    )


def _smoothgrad(ex: Explainer, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    spread = float(x.max() - x.min()) or 1.0
    return NoiseTunnel(Saliency(ex.model)).attribute(
        x,
        nt_type="smoothgrad",
        nt_samples=ex.settings.smoothgrad_samples,
        nt_samples_batch_size=max(1, ex.settings.batch_size // len(x)),
        stdevs=ex.settings.smoothgrad_noise * spread,
        target=t,
        abs=True,
    )


def occlusion_geometry(img_size: int, settings: Settings) -> tuple[int, int]:
    window = settings.occlusion_window or max(1, round(img_size / 7))
    return min(window, img_size), settings.occlusion_stride or max(1, window // 2)


def _occlusion(ex: Explainer, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    window, stride = occlusion_geometry(x.shape[-1], ex.settings)
    return Occlusion(ex.model).attribute(
        x,
        sliding_window_shapes=(3, window, window),
        strides=(3, stride, stride),
        baselines=ex.pixel(0.5, x),  # a grey patch, in the model's normalised space
        target=t,
        perturbations_per_eval=max(1, ex.settings.batch_size // len(x)),
    )


def _shap(ex: Explainer, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    # A small distribution of reference images: black, grey, and noise around grey.
    grey = ex.pixel(0.5, x[:1])
    noise = 0.5 * torch.randn(4, *x.shape[1:], device=x.device)
    references = torch.cat([ex.pixel(0.0, x[:1]), grey, grey + noise])
    method, samples = GradientShap(ex.model), ex.settings.shap_samples
    # GradientShap has no internal batch size: each call expands to images x samples copies
    per_call = max(1, ex.settings.batch_size // samples)
    return torch.cat(
        [
            method.attribute(xs, baselines=references, n_samples=samples, stdevs=0.1, target=ts)
            for xs, ts in zip(x.split(per_call), t.split(per_call), strict=True)
        ]
    )


def _kernel_shap(ex: Explainer, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    size, cells = x.shape[-1], min(ex.settings.kernel_shap_cells, x.shape[-1])
    rows = torch.arange(x.shape[-2]) * cells // x.shape[-2]
    cols = torch.arange(size) * cells // size
    mask = (rows[:, None] * cells + cols[None, :]).expand(1, 3, -1, -1).to(x.device)
    method = KernelShap(ex.model)
    return torch.cat(
        [
            method.attribute(
                x[i : i + 1],
                baselines=ex.pixel(0.5, x[i : i + 1]),
                target=t[i : i + 1],
                feature_mask=mask,
                n_samples=ex.settings.kernel_shap_samples,
                perturbations_per_eval=ex.settings.batch_size,
            )
            for i in range(len(x))  # captum's KernelShap takes one example at a time
        ]
    )


@dataclass(frozen=True)
class Method:
    run: Callable[[Explainer, torch.Tensor, torch.Tensor], torch.Tensor]
    signed: bool  # True: attributions carry a sign (sum over channels, keep the positive part)
    gradients: bool = True  # needs a differentiable model
    rectifiers: bool = False  # overrides activation backward passes
    layer: bool = False  # uses the target layer
    summary: str = ""


METHODS: dict[str, Method] = {
    "saliency": Method(_saliency, False, summary="input gradient magnitude"),
    "deconvnet": Method(_deconvnet, False, rectifiers=True, summary="deconvnet rule"),
    "guided_backprop": Method(_guided_backprop, False, rectifiers=True, summary="guided backprop"),
    "gradcam": Method(_gradcam, True, layer=True, summary="Grad-CAM on the target layer"),
    "gradcam_pp": Method(_gradcam_pp, True, layer=True, summary="Grad-CAM++ (pixel-wise weights)"),
    "guided_gradcam": Method(
        _guided_gradcam, False, rectifiers=True, layer=True, summary="guided backprop x Grad-CAM"
    ),
    "integrated_gradients": Method(
        _integrated_gradients, True, summary="path integral from a black image"
    ),
    "smoothgrad": Method(_smoothgrad, False, summary="saliency averaged over noisy copies"),
    "occlusion": Method(_occlusion, True, gradients=False, summary="grey patch slid over image"),
    "shap": Method(_shap, True, summary="gradient SHAP (expected gradients)"),
    "kernel_shap": Method(
        _kernel_shap, True, gradients=False, summary="kernel SHAP over a grid of squares"
    ),
}


def method_spec(name: str) -> Method:
    if name not in METHODS:
        raise KtaError(did_you_mean(name, [*METHODS, "all"], what="method"))
    return METHODS[name]


def method_names(requested: str | list[str]) -> list[str]:
    """`all`, one name, a comma-separated string or a list, checked against METHODS."""
    names = requested.split(",") if isinstance(requested, str) else list(requested)
    names = [str(n).strip() for n in names if str(n).strip()]
    if names == ["all"]:
        return list(METHODS)
    if not names:
        raise KtaError("method is empty; give one of " + ", ".join([*METHODS, "all"]))
    for name in names:
        method_spec(name)
    return list(dict.fromkeys(names))
