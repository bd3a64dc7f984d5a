"""`kta explain`'s schema: methods, their budgets, faithfulness, data-set views, patterns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from kta_cli.data.spec import DataSpec
from kta_cli.schema.checks import non_negative, one_of, positive
from kta_cli.schema.groups import LoggerConfig, TrainerConfig


@dataclass
class IntegratedGradients:
    steps: int = positive(32)


@dataclass
class SmoothGrad:
    samples: int = positive(16)
    noise: float = non_negative(0.15)  # noise std as a fraction of the input's value range


@dataclass
class Occlusion:
    window: int | None = positive(None)  # grey patch side in pixels; null: a seventh of the image
    stride: int | None = positive(None)  # null: half the window


@dataclass
class Shap:
    samples: int = positive(16)  # gradient SHAP samples per image


@dataclass
class KernelShap:
    samples: int = positive(64)  # model evaluations per image
    cells: int = positive(8)  # features: a cells x cells grid of squares


@dataclass
class Faithfulness:
    enabled: bool = True
    steps: int = positive(20)  # points on the deletion / insertion curves
    reference: str = one_of("grey", "black", "blur")  # what a removed pixel becomes
    random_repeats: int = positive(3)  # random pixel orders averaged for the baseline


@dataclass
class Views:
    """Data-set views (only when explaining a data set)."""

    enabled: bool = True
    mistakes: int = non_negative(8)  # most confident mistakes shown with their heatmaps
    images: int = positive(2048)  # at most this many images of the split scored


@dataclass
class Patterns:
    """Image patches that activate a layer's channels most."""

    enabled: bool = True
    layer: str | None = None  # null: the CAM target layer
    channels: list[int] | None = None  # channel indices; null: the `count` strongest
    count: int = positive(8)
    top: int = positive(8)  # patches per channel
    patch: int | None = positive(None)  # patch side in pixels; null: twice the layer's stride
    images: int = positive(512)  # at most this many images scanned


@dataclass
class ExplainSchema:
    data: DataSpec | None = None  # null: the checkpoint's own data set
    trainer: TrainerConfig = MISSING
    logger: LoggerConfig = MISSING
    ckpt: str = "latest"
    method: Any = "gradcam"  # a name, a list [gradcam,saliency], or all
    image: str | None = None  # an image file or a folder of them (any format PIL reads)
    n: int = positive(16)  # images taken from the data set when image= is not given
    split: str = one_of("test", "train", "val")
    target: Any = None  # class index or name to explain; null: each image's predicted class
    layer: str | None = None  # module name for CAM methods; null: last conv stage / ViT block
    compare: str | None = None  # another checkpoint (distilled, pruned, ...): heatmap agreement
    batch_size: int = positive(32)  # images or perturbed copies per forward pass
    grid_rows: int = positive(16)  # at most this many images in grid.png
    seed: int = 0
    integrated_gradients: IntegratedGradients = field(default_factory=IntegratedGradients)
    smoothgrad: SmoothGrad = field(default_factory=SmoothGrad)
    occlusion: Occlusion = field(default_factory=Occlusion)
    shap: Shap = field(default_factory=Shap)
    kernel_shap: KernelShap = field(default_factory=KernelShap)
    faithfulness: Faithfulness = field(default_factory=Faithfulness)
    views: Views = field(default_factory=Views)
    patterns: Patterns = field(default_factory=Patterns)
