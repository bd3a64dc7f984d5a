"""NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR (Chen et al. 2020).

Written by hand (a few lines): timm and torchvision have no contrastive loss, and the libraries
that do (lightly, solo-learn) would be a large dependency for one function.

For 2B embeddings (view 1 of B images, then view 2), each one's positive is the other view of
its image and its negatives are the other 2B - 2:
    l_i = -log( exp(s(i, pos(i)) / T) / sum_{k != i} exp(s(i, k) / T) ),  s = cosine similarity
and the loss is the mean of l_i. Under torchrun the keys are every process's embeddings
(all-gathered with gradients), so a process's anchors meet the negatives of the global batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


def gather_with_grad(embeddings: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(every process's embeddings in rank order, this rank's offset into them). The backward
    of the gather sums each rank's gradient back to its owner (a reduce-scatter), so the
    gradient DDP averages is that of the global-batch loss."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return embeddings, 0
    offset = dist.get_rank() * len(embeddings)
    from torch.distributed import _functional_collectives as funcol

    if hasattr(funcol, "all_gather_single"):  # torch >= 2.14: autograd-aware, not deprecated
        gathered = funcol.all_gather_single(embeddings, 0, dist.group.WORLD)
        return funcol.wait_tensor(gathered), offset
    from torch.distributed.nn.functional import all_gather  # deprecated in torch 2.14

    return torch.cat(all_gather(embeddings)), offset


def nt_xent_logits(
    view1: torch.Tensor, view2: torch.Tensor, temperature: float, *, distributed: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits of each local anchor against every key but itself, the positive's column).

    Anchors are this process's 2B embeddings; keys are all of them (or, `distributed`, the
    global batch laid out as view 1 of every rank, then view 2 of every rank: the layout one
    process holding the whole batch would have).
    """
    view1, view2 = F.normalize(view1.float(), dim=1), F.normalize(view2.float(), dim=1)
    if distributed:
        keys1, offset = gather_with_grad(view1)
        keys2, _ = gather_with_grad(view2)
    else:
        keys1, keys2, offset = view1, view2, 0
    batch, total = len(view1), len(keys1)
    anchors = torch.cat([view1, view2])
    keys = torch.cat([keys1, keys2])
    logits = anchors @ keys.T / temperature
    local = torch.arange(batch, device=logits.device) + offset
    own = torch.cat([local, local + total])  # each anchor's own column, masked out
    positive = torch.cat([local + total, local])
    logits = logits.masked_fill(
        F.one_hot(own, num_classes=2 * total).bool(), torch.finfo(logits.dtype).min
    )
    return logits, positive


def nt_xent(
    view1: torch.Tensor, view2: torch.Tensor, temperature: float = 0.5, *, distributed: bool = False
) -> torch.Tensor:
    """The mean NT-Xent loss of two (B, D) batches of embeddings (row i of each: one image)."""
    logits, positive = nt_xent_logits(view1, view2, temperature, distributed=distributed)
    return F.cross_entropy(logits, positive)


def contrastive_accuracy(logits: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """How often an anchor's most similar key is its positive (a training-progress figure)."""
    return (logits.argmax(dim=1) == positive).float().mean()
