"""Linear evaluation of frozen features: the standard read-out of self-supervised features.

scikit-learn's logistic regression on standardised pooled features of the training split,
scored on another split (a probe trained by SGD would add epochs and a schedule to tune; on the
few thousand images kta's small sets hold, L-BFGS fits in seconds and has no rate to pick).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from kta_cli.ssl.knn import feature_bank


def split_features(model: nn.Module, loader: Any) -> tuple[torch.Tensor, torch.Tensor]:
    features, labels = feature_bank(model, loader)
    return features.cpu(), labels.cpu()


def linear_eval(
    model: nn.Module, train: Any, test: Any, *, max_iter: int = 1000, seed: int = 0
) -> dict[str, float]:
    """{linear_eval_train_acc, linear_eval_acc}: a logistic-regression probe fitted on `train`'s
    features (unaugmented), scored on `test`'s."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train_x, train_y = split_features(model, train)
    test_x, test_y = split_features(model, test)
    probe = make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=max_iter, random_state=seed)
    )
    probe.fit(train_x.numpy(), train_y.numpy())
    return {
        "linear_eval_train_acc": float(probe.score(train_x.numpy(), train_y.numpy())),
        "linear_eval_acc": float(probe.score(test_x.numpy(), test_y.numpy())),
    }
