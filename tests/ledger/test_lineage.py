"""The chain a checkpoint came from, followed through hand-made run folders' parent pointers."""

from __future__ import annotations

import pytest

from kta_cli.errors import KtaError
from kta_cli.ledger.lineage import as_rows, lineage
from tests.ledger.folders import make_run


def chain(root):
    """train -> distill (teacher = train's best.ckpt) -> quantize (checkpoint = distill's)."""
    train = make_run(root / "outputs/train/t", "train", ["model=resnet18"],
                     {"test_acc": 0.9, "parameters": 1000}, checkpoint_bytes=4000)  # fmt: skip
    distill = make_run(
        root / "outputs/distill/d", "distill", ["student=resnet10t"],
        {"test_acc": 0.85, "parameters": 500, "parent": str(train / "best.ckpt")},
        checkpoint_bytes=2000,
    )  # fmt: skip
    figures = {"acc_after": 0.84, "int8_latency_ms_batch1": 1.5}
    quantize = make_run(root / "outputs/quantize/q", "quantize", [],
                        {**figures, "checkpoint": str(distill / "best.ckpt")},
                        checkpoint_bytes=600)  # fmt: skip
    return train, distill, quantize


def test_lineage_follows_parents_oldest_first_with_key_figures(tmp_path):
    train, distill, quantize = chain(tmp_path)
    rows = as_rows(lineage(str(quantize / "model.ckpt")))  # a checkpoint names its run
    assert [r["command"] for r in rows] == ["train", "distill", "quantize"]
    assert [r["accuracy"] for r in rows] == [0.9, 0.85, 0.84]
    assert [r["parameters"] for r in rows] == [1000, 500, None]
    assert [r["checkpoint_bytes"] for r in rows] == [4000, 2000, 600]
    assert [r["latency_ms"] for r in rows] == [None, None, 1.5]
    assert rows[0]["parent"] is None and not rows[0]["parent_missing"]


def test_a_parent_that_is_gone_ends_the_chain_and_says_so(tmp_path):
    _, distill, quantize = chain(tmp_path)
    for path in (tmp_path / "outputs/train/t").rglob("*"):
        if path.is_file():
            path.unlink()
    steps = lineage(str(quantize))
    assert [s.record.command for s in steps] == ["distill", "quantize"]
    assert steps[0].missing_parent


def test_lineage_of_a_folder_without_metrics_is_refused(tmp_path):
    with pytest.raises(KtaError, match="not a run folder"):
        lineage(str(tmp_path))
