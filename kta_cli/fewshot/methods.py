"""Few-shot classifiers on frozen features, batched over episodes (SimpleShot, Wang et al. 2019).

Nearest centroid on raw (UN), L2-normalised (L2N) and centred-then-normalised (CL2N) features,
where centring subtracts the mean feature of the base classes (the checkpoint's own training
data); kNN among the support examples; a logistic-regression probe (scikit-learn, one fit per
episode: the only method that is not one tensor operation over all episodes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from kta_cli.errors import KtaError, did_you_mean
from kta_cli.fewshot.episodes import Episodes

TRANSFORMS = ("un", "l2n", "cl2n")
METHODS = ("nc_un", "nc_l2n", "nc_cl2n", "knn", "logreg")
METRICS = ("cosine", "euclidean")


@dataclass
class MethodOptions:
    knn_k: int = 5
    knn_metric: str = "cosine"
    knn_transform: str = "cl2n"
    logreg_c: float = 1.0
    logreg_max_iter: int = 1000
    logreg_transform: str = "cl2n"
    logreg_episodes: int | None = None  # fit the probe on the first this many episodes only


def check_methods(methods: list[str], options: MethodOptions) -> None:
    for name in methods:
        if name not in METHODS:
            raise KtaError(did_you_mean(name, METHODS, what="fewshot method"))
    for transform in (options.knn_transform, options.logreg_transform):
        if transform not in TRANSFORMS:
            raise KtaError(did_you_mean(transform, TRANSFORMS, what="feature transform"))
    if options.knn_metric not in METRICS:
        raise KtaError(did_you_mean(options.knn_metric, METRICS, what="kNN metric"))


def transform(features: torch.Tensor, kind: str, base_mean: torch.Tensor | None) -> torch.Tensor:
    """UN: as they are; L2N: unit length; CL2N: minus the base mean, then unit length."""
    if kind == "un":
        return features
    if kind == "cl2n":
        if base_mean is None:
            raise KtaError("CL2N needs the base-class mean feature")
        features = features - base_mean
    return torch.nn.functional.normalize(features, dim=-1)


def nearest_centroid(support: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """support (E, N, K, D), query (E, P, D) -> (E, P) index of the nearest class mean."""
    centroids = support.mean(dim=2)
    return torch.cdist(query, centroids).argmin(dim=2)


def knn(support: torch.Tensor, query: torch.Tensor, *, k: int, metric: str) -> torch.Tensor:
    """Majority vote of the k nearest support examples; a tie goes to the class of the nearer
    neighbour. k is capped at the support size."""
    episodes, ways, shots, dim = support.shape
    flat = support.reshape(episodes, ways * shots, dim)
    labels = torch.arange(ways).repeat_interleave(shots)
    if metric == "cosine":
        norm = torch.nn.functional.normalize
        distance = 1 - norm(query, dim=-1) @ norm(flat, dim=-1).transpose(1, 2)
    else:
        distance = torch.cdist(query, flat)
    k = min(k, ways * shots)
    nearest = distance.topk(k, dim=2, largest=False).indices  # (E, P, k), nearest first
    hits = torch.nn.functional.one_hot(labels[nearest], ways).float()  # (E, P, k, N)
    rank = torch.arange(k, dtype=torch.float).view(1, 1, k, 1)
    first = torch.where(hits > 0, rank, torch.full_like(hits, float(k))).amin(dim=2)
    return (hits.sum(dim=2) - first / (k + 1)).argmax(dim=2)


def logistic_regression(
    support: torch.Tensor, query: torch.Tensor, *, c: float, max_iter: int
) -> torch.Tensor:
    """One scikit-learn probe per episode (lbfgs, multinomial)."""
    from sklearn.linear_model import LogisticRegression

    episodes, ways, shots, dim = support.shape
    labels = torch.arange(ways).repeat_interleave(shots).numpy()
    predictions = []
    for x, q in zip(
        support.reshape(episodes, ways * shots, dim).numpy(), query.numpy(), strict=True
    ):
        probe = LogisticRegression(C=c, max_iter=max_iter).fit(x, labels)
        predictions.append(torch.from_numpy(probe.predict(q)))
    return torch.stack(predictions)


def predict(
    method: str, support: torch.Tensor, query: torch.Tensor, base_mean: torch.Tensor | None,
    options: MethodOptions,
) -> torch.Tensor:  # fmt: skip
    if method.startswith("nc_"):
        kind = method.removeprefix("nc_")
        return nearest_centroid(
            transform(support, kind, base_mean), transform(query, kind, base_mean)
        )
    if method == "knn":
        kind = options.knn_transform
        return knn(transform(support, kind, base_mean), transform(query, kind, base_mean),
                   k=options.knn_k, metric=options.knn_metric)  # fmt: skip
    kind = options.logreg_transform
    return logistic_regression(transform(support, kind, base_mean),
                               transform(query, kind, base_mean),
                               c=options.logreg_c, max_iter=options.logreg_max_iter)  # fmt: skip


def episode_accuracies(
    features: torch.Tensor,
    episodes: Episodes,
    methods: list[str],
    *,
    base_mean: torch.Tensor | None,
    options: MethodOptions,
    chunk_floats: int = 1 << 24,
) -> dict[str, torch.Tensor]:
    """Per-episode accuracy (E,) of each method; every method sees the very same episodes.
    Episodes go in chunks of about `chunk_floats` gathered feature values (bounds memory)."""
    _, ways, shots = episodes.support.shape
    queries = episodes.query.shape[2]
    per_episode = ways * (shots + queries) * features.shape[1]
    chunk = max(1, chunk_floats // per_episode)
    truth = torch.arange(ways).repeat_interleave(queries)
    results: dict[str, list[torch.Tensor]] = {m: [] for m in methods}
    for start in range(0, len(episodes), chunk):
        support = features[episodes.support[start : start + chunk]]
        query = features[episodes.query[start : start + chunk]].flatten(1, 2)
        for method in methods:
            if method == "logreg" and options.logreg_episodes is not None:
                room = options.logreg_episodes - start
                if room <= 0:
                    continue
                support_, query_ = support[:room], query[:room]
            else:
                support_, query_ = support, query
            predicted = predict(method, support_, query_, base_mean, options)
            results[method].append((predicted == truth).float().mean(dim=1))
    return {m: torch.cat(parts) for m, parts in results.items()}


def confidence(accuracies: torch.Tensor) -> dict[str, float]:
    """Mean accuracy and its 95% interval half-width 1.96 * std / sqrt(episodes), with the
    population std (ddof=0) as SimpleShot's code reports it."""
    std = accuracies.std(correction=0).item() if len(accuracies) > 1 else 0.0
    return {
        "mean": accuracies.mean().item(),
        "ci95": 1.96 * std / math.sqrt(len(accuracies)),
        "std": std,
        "episodes": len(accuracies),
    }
