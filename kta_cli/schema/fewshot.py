"""`kta fewshot` and `kta embed` schemas: frozen features, episodes, methods, pictures."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from kta_cli.data.spec import DataSpec
from kta_cli.errors import KtaError
from kta_cli.schema.checks import one_of, positive, ruled
from kta_cli.schema.groups import LoggerConfig, TrainerConfig

FEATURE_SOURCES = ("model", "random", "pixels")
POOLS = ("avg", "max", "grid2", "grid4")


@dataclass
class Knn:
    k: int = positive(5)  # capped at the support size (1-shot 5-way: 5)
    metric: str = one_of("cosine", "euclidean")
    transform: str = one_of("cl2n", "l2n", "un")  # what the neighbours are measured on


@dataclass
class LogReg:
    C: float = positive(1.0)  # inverse regularisation strength (scikit-learn)
    max_iter: int = positive(1000)
    transform: str = one_of("cl2n", "l2n", "un")
    episodes: int | None = positive(None)  # probe only the first this many episodes (slow part)


@dataclass
class FewshotOptions:
    features: str = one_of(*FEATURE_SOURCES)  # model | random (same net, random init) | pixels
    ways: int = ruled(5, (">= 2", lambda v: v >= 2))
    shots: list[int] = ruled([1, 5], ("> 0", lambda v: v > 0), each=True)  # one run per count
    queries: int = positive(15)
    episodes: int = positive(1000)
    methods: list[str] = field(
        default_factory=lambda: ["nc_un", "nc_l2n", "nc_cl2n", "knn", "logreg"]
    )
    split: str = one_of("test", "val", "train", "all")  # novel images episodes draw from
    base_images: int = positive(4096)  # base-class images averaged for the CL2N mean
    cache: bool = True  # keep features in outputs/.cache/fewshot for the next run
    knn: Knn = field(default_factory=Knn)
    logreg: LogReg = field(default_factory=LogReg)

    def check(self) -> None:
        if not self.shots or not self.methods:
            raise KtaError("fewshot.shots and fewshot.methods must each name one value or more")


@dataclass
class FewshotSchema:
    data: DataSpec = MISSING  # data.<key>=... alone: the checkpoint's own data set, changed
    trainer: TrainerConfig = MISSING
    logger: LoggerConfig = MISSING
    ckpt: str = "latest"
    layer: str | None = None  # null: the pooled features before the head
    pool: str = one_of(*POOLS)  # grid2 / grid4 keep a 2x2 / 4x4 spatial grid of `layer`
    batch_size: int = positive(256)  # images per forward pass
    seed: int = 0
    fewshot: FewshotOptions = field(default_factory=FewshotOptions)


@dataclass
class EmbedOptions:
    points: int = positive(1000)  # stratified sample of at most this many images
    pca_dims: int = positive(50)  # PCA before t-SNE (as the t-SNE authors advise)
    perplexity: float = positive(30.0)  # capped below the sample size
    thumbnails: bool = False  # draw small images at some points of the t-SNE map
    thumbnail_count: int = positive(120)
    projector: bool = True  # TensorBoard projector files (embedding, metadata, sprite)
    knn_k: int = positive(5)  # leave-one-out kNN accuracy in feature space


@dataclass
class EmbedSchema:
    data: DataSpec = MISSING  # as for fewshot: data.<key>=... alone changes the checkpoint's own
    trainer: TrainerConfig = MISSING
    logger: LoggerConfig = MISSING
    ckpt: str = "latest"
    compare: str | None = None  # a second checkpoint drawn beside the first, on the same images
    features: str = one_of(*FEATURE_SOURCES)
    layer: str | None = None
    pool: str = one_of(*POOLS)
    split: str = one_of("test", "val", "train", "all")
    batch_size: int = positive(256)
    seed: int = 0
    embed: EmbedOptions = field(default_factory=EmbedOptions)
