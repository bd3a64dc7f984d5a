"""NT-Xent checked against values worked out by hand, and across two processes."""

import math
from pathlib import Path

import pytest
import torch

from kta_cli.losses.contrastive import contrastive_accuracy, nt_xent, nt_xent_logits


def test_identical_views_of_orthogonal_images():
    # Pair a: a = a' = (1, 0); pair b: b = b' = (0, 1); T = 1.
    # Anchor a sees keys b, a', b' with cosines 0, 1, 0:
    #   l_a = -log(e^1 / (e^1 + e^0 + e^0)) = log(1 + 2/e) = log(1.73576) = 0.55144
    # and by symmetry every anchor has the same loss.
    view1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    loss = nt_xent(view1, view1.clone(), temperature=1.0)
    assert loss.item() == pytest.approx(math.log(1 + 2 / math.e), abs=1e-6)
    assert loss.item() == pytest.approx(0.55144, abs=1e-5)


def test_two_pairs_at_temperature_one_half():
    # a = (1, 0), a' = (0.6, 0.8), b = (0, 1), b' = (0, -1); T = 0.5, so logits = 2 * cosine.
    # Cosines: a.a' = 0.6, a.b = 0, a.b' = 0, a'.b = 0.8, a'.b' = -0.8, b.b' = -1.
    #   l_a  = -1.2 + log(e^1.2 + e^0 + e^0)       = -1.2 + log(5.3201) = 0.47150
    #   l_b  =  2.0 + log(e^-2 + e^0 + e^1.6)      =  2.0 + log(6.0886) = 3.80638
    #   l_a' = -1.2 + log(e^1.2 + e^1.6 + e^-1.6)  = -1.2 + log(8.4762) = 0.93713
    #   l_b' =  2.0 + log(e^-2 + e^0 + e^-1.6)     =  2.0 + log(1.3372) = 2.29060
    # mean = (0.47150 + 3.80638 + 0.93713 + 2.29060) / 4 = 1.87640
    view1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    view2 = torch.tensor([[0.6, 0.8], [0.0, -1.0]])
    assert nt_xent(view1, view2, temperature=0.5).item() == pytest.approx(1.87640, abs=1e-5)
    # Cosine similarity: the length of an embedding does not matter.
    assert nt_xent(3 * view1, 0.5 * view2, 0.5).item() == pytest.approx(1.87640, abs=1e-5)
    # Nearest key of each anchor (its own column masked): a -> a' (1.2, its positive),
    # b -> a' (1.6, not b'), a' -> b (1.6, not a), b' -> a (0, not b): 1 of 4 right.
    logits, positive = nt_xent_logits(view1, view2, 0.5)
    assert contrastive_accuracy(logits, positive).item() == pytest.approx(0.25)


def loss_worker(rank: int, folder: str) -> None:
    """One rank of two (gloo): its half of the batch, the loss against the global batch."""
    import torch.distributed as dist

    from kta_cli.engine.runtime import Runtime, stop_runtime

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/group", rank=rank, world_size=2)
    view1, view2 = torch.load(f"{folder}/views.pt", weights_only=True)
    half = len(view1) // 2
    local1 = view1[rank * half : (rank + 1) * half].clone().requires_grad_(True)
    local2 = view2[rank * half : (rank + 1) * half].clone().requires_grad_(True)
    loss = nt_xent(local1, local2, 0.2, distributed=True)
    loss.backward()
    torch.save(
        {"loss": loss.detach(), "grad1": local1.grad, "grad2": local2.grad},
        f"{folder}/rank{rank}.pt",
    )
    stop_runtime(Runtime(torch.device("cpu"), rank, 2))  # the way kta leaves the group


def test_two_processes_see_each_others_negatives(tmp_path: Path):
    generator = torch.Generator().manual_seed(0)
    view1, view2 = torch.randn(2, 8, 5, generator=generator)
    torch.save((view1, view2), tmp_path / "views.pt")
    torch.multiprocessing.spawn(loss_worker, args=(str(tmp_path),), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]

    whole1, whole2 = view1.clone().requires_grad_(True), view2.clone().requires_grad_(True)
    single = nt_xent(whole1, whole2, 0.2)
    single.backward()
    # Each rank's loss is the mean over its own anchors; their mean is the global batch's.
    mean = (ranks[0]["loss"] + ranks[1]["loss"]) / 2
    assert mean.item() == pytest.approx(single.item(), abs=1e-6)
    assert ranks[0]["loss"].item() != pytest.approx(nt_xent(view1[:4], view2[:4], 0.2).item())
    # DDP averages the ranks' gradients; all_gather's backward sums each rank's share back to
    # its owner, so a rank's gradient / 2 is the single process's gradient of its rows.
    for rank, part in enumerate(ranks):
        rows = slice(rank * 4, (rank + 1) * 4)
        assert torch.allclose(part["grad1"] / 2, whole1.grad[rows], atol=1e-6)
        assert torch.allclose(part["grad2"] / 2, whole2.grad[rows], atol=1e-6)
