"""Building models with timm, fitting a state_dict onto one, and weight initialisation.

A leaf: reads no files (kta_cli/loading.py does) and knows nothing of compression or training.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from kta_cli.errors import KtaError, did_you_mean

log = logging.getLogger(__name__)
INIT_SCHEMES = ("default", "kaiming", "xavier", "orthogonal")


def hub_reachable(timeout_s: float = 2.0) -> bool:
    """One short probe of the Hugging Face hub, so an offline machine is told at once.

    Without it huggingface_hub retries five times with back-off (~50 s) and logs every retry.
    A thread bounds the DNS look-up too, which a socket timeout does not.
    """
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    endpoint = urlparse(constants.ENDPOINT)
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or 443
    reached: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
            reached.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return bool(reached)


@contextmanager
def hub_offline() -> Iterator[None]:
    """huggingface_hub's offline mode for one call: cached weights load, others fail at once."""
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    timm_log = logging.getLogger("timm.models._builder")  # its "Loading ... from the hub" line
    level = timm_log.level
    constants.HF_HUB_OFFLINE = True  # read at call time by huggingface_hub's HTTP layer
    timm_log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before
        timm_log.setLevel(level)


def create_model(
    name: str,
    *,
    num_classes: int,
    pretrained: bool = False,
    drop_rate: float = 0.0,
    img_size: int | None = None,
) -> nn.Module:
    """timm.create_model with a did-you-mean for typos and a clear offline error.

    `img_size` reaches models whose shape depends on it (ViTs); CNNs do not take it.
    """
    import timm

    if not timm.is_model(name):
        raise KtaError(did_you_mean(name, timm.list_models(), what="model"))
    kwargs: dict[str, Any] = {
        "pretrained": pretrained,
        "num_classes": num_classes,
        "drop_rate": drop_rate,
    }
    online = not pretrained or hub_reachable()
    try:
        with nullcontext() if online else hub_offline():
            try:
                return (
                    timm.create_model(name, img_size=img_size, **kwargs)
                    if img_size
                    else timm.create_model(name, **kwargs)
                )
            except TypeError as error:
                if "img_size" not in str(error):
                    raise
                return timm.create_model(name, **kwargs)
    except (OSError, RuntimeError) as error:
        if not pretrained:
            raise
        why = type(error).__name__ if online else "the hub is unreachable and they are not cached"
        raise KtaError(
            f"could not fetch pretrained weights for {name} ({why}); "
            "offline? start from a local file with model.checkpoint=<path> and "
            "model.pretrained=false"
        ) from error


def init_weights(model: nn.Module, scheme: str) -> None:
    """Re-initialise conv and linear weights (biases to zero); BatchNorm to identity."""
    if scheme not in INIT_SCHEMES:
        raise KtaError(did_you_mean(scheme, INIT_SCHEMES, what="init scheme"))
    if scheme == "default":
        return
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            if scheme == "kaiming":
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif scheme == "xavier":
                nn.init.xavier_uniform_(module.weight)
            else:
                nn.init.orthogonal_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)):
            if module.weight is not None:
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)


def head_names(model: nn.Module) -> tuple[str, ...]:
    """Parameter-name prefixes of the classifier head (timm's pretrained_cfg names it)."""
    classifier = getattr(model, "pretrained_cfg", {}).get("classifier", "fc")
    names = classifier if isinstance(classifier, (list, tuple)) else [classifier]
    return tuple(f"{n}." for n in names)


def load_matching_weights(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    *,
    origin: str,
    origin_architecture: Callable[[], str] = lambda: "another architecture",
) -> dict[str, list[str]]:
    """Load the tensors of `state` that fit; a head of another class count is left new.

    Returns the key report. `origin` names where the weights come from (a path);
    `origin_architecture()` is only called when a mismatch needs explaining (it may read a file).
    Raises KtaError when the weights are for another architecture (body keys do not fit).
    """

    def mismatch() -> str:
        here = getattr(model, "pretrained_cfg", {}).get("architecture", type(model).__name__)
        return f"weights in {origin} are for {origin_architecture()}, this model is {here}"

    own = model.state_dict()
    heads = head_names(model)
    report: dict[str, list[str]] = {"loaded": [], "replaced": [], "missing": [], "unexpected": []}
    usable = {}
    for key, tensor in state.items():
        if key not in own:
            report["unexpected"].append(key)
        elif own[key].shape != tensor.shape:
            if not key.startswith(heads):
                raise KtaError(
                    f"{mismatch()}: {key} has shape {tuple(tensor.shape)} there, "
                    f"{tuple(own[key].shape)} here"
                )
            report["replaced"].append(key)
        else:
            usable[key] = tensor
            report["loaded"].append(key)
    report["missing"] = [k for k in own if k not in state and not k.startswith(heads)]
    if not usable or len(report["missing"]) > len(own) // 2:
        raise KtaError(
            f"{mismatch()}: {len(report['missing'])} of {len(own)} tensors missing there"
        )
    model.load_state_dict(usable, strict=False)
    log.info(
        "weights from %s: %d loaded, %d replaced (head), %d missing, %d unexpected",
        origin,
        *(len(report[kind]) for kind in ("loaded", "replaced", "missing", "unexpected")),
    )
    for kind in ("replaced", "missing", "unexpected"):
        if report[kind]:
            log.info("  %s: %s", kind, ", ".join(report[kind][:10]))
    return report
