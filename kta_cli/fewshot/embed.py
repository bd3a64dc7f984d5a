"""Pictures of a feature space: a t-SNE map (scikit-learn, PCA first), TensorBoard projector
files, and two figures of separation a person can compare across checkpoints: leave-one-out kNN
accuracy (cosine) and the silhouette score (cosine) of the classes in feature space."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch


def stratified_sample(labels: torch.Tensor, points: int, seed: int) -> torch.Tensor:
    """Indices of at most `points` examples, each class keeping its share (at least one)."""
    if len(labels) <= points:
        return torch.arange(len(labels))
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for cls in labels.unique(sorted=True):
        members = (labels == cls).nonzero().flatten()
        quota = max(1, int(points * len(members) / len(labels)))
        chosen.append(members[torch.randperm(len(members), generator=generator)[:quota]])
    return torch.cat(chosen).sort().values[:points]


def tsne_map(features: torch.Tensor, *, pca_dims: int, perplexity: float, seed: int) -> np.ndarray:
    """(N, 2) t-SNE coordinates; PCA to `pca_dims` first (denoises and speeds it up)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    values = features.double().numpy()
    dims = min(pca_dims, values.shape[0], values.shape[1])
    if values.shape[1] > dims:
        values = PCA(n_components=dims, random_state=seed).fit_transform(values)
    perplexity = min(perplexity, max(1.0, (len(values) - 1) / 3))  # t-SNE needs N > 3 * perp
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
    return tsne.fit_transform(values)


def separation(features: torch.Tensor, labels: torch.Tensor, *, k: int) -> dict[str, float]:
    """Leave-one-out kNN accuracy and silhouette score, both with cosine distance."""
    from sklearn.metrics import silhouette_score

    unit = torch.nn.functional.normalize(features.double(), dim=1)
    similarity = unit @ unit.T
    similarity.fill_diagonal_(-float("inf"))  # leave the example itself out
    k = min(k, len(labels) - 1)
    neighbours = labels[similarity.topk(k, dim=1).indices]  # (N, k)
    votes = torch.nn.functional.one_hot(neighbours, int(labels.max()) + 1).sum(dim=1)
    knn_acc = (votes.argmax(dim=1) == labels).double().mean().item()
    several = len(labels.unique()) > 1
    silhouette = silhouette_score(unit.numpy(), labels.numpy(), metric="cosine") if several else 0.0
    return {"knn_acc": knn_acc, "silhouette": float(silhouette), "points": len(labels), "k": k}


def embed_figure(
    panels: list[tuple[str, np.ndarray]],
    labels: torch.Tensor,
    class_names: list[str],
    thumbnails: torch.Tensor | None = None,
    thumbnail_count: int = 0,
) -> Any:
    """One t-SNE panel per checkpoint, side by side, coloured by class with one legend.
    `thumbnails` ((N, 3, H, W) in [0, 1]) are drawn at an evenly spread subset of the points."""
    import matplotlib.pyplot as plt
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    from kta_cli.report import figures  # noqa: F401  (selects the Agg backend)

    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels) + 1.5, 5.5))
    axes = np.atleast_1d(axes)
    colours = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
    for ax, (title, coords) in zip(axes, panels, strict=False):
        for c, name in enumerate(class_names):
            mask = (labels == c).numpy()
            ax.scatter(coords[mask, 0], coords[mask, 1], s=8, color=colours(c % colours.N),
                       label=name, alpha=0.8)  # fmt: skip
        if thumbnails is not None and thumbnail_count:
            step = max(1, len(coords) // thumbnail_count)
            for i in range(0, len(coords), step):
                picture = thumbnails[i].permute(1, 2, 0).numpy()
                frame = {"edgecolor": colours(int(labels[i]) % colours.N), "linewidth": 1.5}
                box = AnnotationBbox(
                    OffsetImage(picture, zoom=0.5), coords[i], pad=0.1, bboxprops=frame
                )  # fmt: skip  (framed in its class colour)
                ax.add_artist(box)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    handles, names = axes[0].get_legend_handles_labels()
    figure.legend(handles, names, loc="center right", fontsize=8, markerscale=2, title="class")
    figure.tight_layout(rect=(0, 0, 1 - 1.2 / figure.get_figwidth(), 1))
    return figure


def write_projector(
    folder: Path, embeddings: list[tuple[str, torch.Tensor]], names: list[str],
    images: torch.Tensor,
) -> Path:  # fmt: skip
    """TensorBoard projector files: each embedding with class metadata and label images, so a
    user can switch to PCA / UMAP / t-SNE in the browser (tensorboard --logdir <folder>)."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(folder))
    for step, (tag, features) in enumerate(embeddings):
        writer.add_embedding(features, metadata=names, label_img=images, tag=tag, global_step=step)
    writer.close()
    return folder
