"""`kta compare`: hand-made run folders through the real CLI, tables written, bad input refused."""

from __future__ import annotations

import csv
import json

import pytest

from tests.ledger.folders import make_run, seed_study


def test_compare_writes_one_row_per_seed_group_in_csv_markdown_and_json(kta, tmp_path):
    seed_study(tmp_path)
    result = kta("compare", "outputs/train/a*", "outputs/train/b*", "outputs/train/sweep")
    assert result.code == 0, result.err
    assert "0.8500 ± 0.0707" in result.out and "excluded (pruned)" in result.out
    run_dir = result.run_dir("compare")
    table = json.loads((run_dir / "compare.json").read_text())
    # freeze: 0.80, 0.90 -> 0.85 ± sqrt(0.005); full: 0.70, 0.74, 0.78 -> 0.74 ± 0.04
    means = [(r["overrides"], r["n"], r["test_acc_mean"]) for r in table["rows"]]
    assert means == [("model=resnet18 strategy=freeze", 2, pytest.approx(0.85)),
                     ("model=resnet18 strategy=full", 3, pytest.approx(0.74))]  # fmt: skip
    assert sorted(e["status"] for e in table["excluded"]) == ["failed", "pruned"]
    rows = list(csv.DictReader((run_dir / "compare.csv").open()))
    assert float(rows[1]["test_acc_std"]) == pytest.approx(0.04)
    markdown = (run_dir / "compare.md").read_text()
    assert markdown.startswith("Every group also ran with: `model=resnet18`")  # said once
    assert "| 1 | train strategy=freeze | 2 | 0.8500 ± 0.0707 |" in markdown


def test_compare_lineage_flag_prints_the_chain(kta, tmp_path):
    train = make_run(tmp_path / "outputs/train/t", "train", [], {"test_acc": 0.9},
                     checkpoint_bytes=10)  # fmt: skip
    make_run(tmp_path / "outputs/prune/p", "prune", [],
             {"test_acc_after_finetune": 0.8, "checkpoint": str(train / "best.ckpt")})  # fmt: skip
    result = kta("compare", "--lineage", "outputs/prune/p")
    assert result.code == 0, result.err
    rows = json.loads((result.run_dir("compare") / "lineage.json").read_text())["rows"]
    assert [(r["command"], r["accuracy"]) for r in rows] == [("train", 0.9), ("prune", 0.8)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["metrics=[test_ac]"], "unknown metric 'test_ac'; did you mean 'test_acc'"),
        (["outputs/nothing*"], "outputs/nothing* matches nothing"),
        (["empty"], "empty holds no metrics.json"),
        ([], "nothing to compare"),
    ],
)
def test_compare_refuses_bad_input_with_one_line(kta, tmp_path, args, message):
    seed_study(tmp_path)
    (tmp_path / "empty").mkdir()
    runs = [] if not args or "=" not in args[0] else ["outputs/train"]
    result = kta("compare", *runs, *args)
    assert result.code == 2 and message in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_compare_help_lists_its_options(kta):
    result = kta("compare", "--help")
    assert result.code == 0 and "lineage: null" in result.out and "metrics: null" in result.out
