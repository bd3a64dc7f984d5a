"""Which run folders a list of paths names: sweep folders expand, repeats count once."""

from __future__ import annotations

import json

from kta_cli.ledger.runs import expand, read_run
from kta_cli.report.run_folder import mark_latest
from tests.ledger.folders import make_run


def test_a_sweep_folder_stands_for_its_trials_and_a_pointer_for_its_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sweep = tmp_path / "outputs" / "sweep" / "s1"
    trials = [make_run(sweep / str(n), "train", [f"optim.lr=0.{n + 1}"], {"test_acc": 0.5})
              for n in range(2)]  # fmt: skip
    (sweep / "metrics.json").write_text(json.dumps({"best_value": 0.5}))  # the sweep's summary
    (sweep / ".optuna").mkdir()
    (sweep / ".optuna" / "metrics.json").write_text("{}")  # hidden: never a run
    mark_latest(trials[1], "train")  # outside outputs/train/: the pointer sits beside the trials
    found = expand(["outputs/sweep/s1", "outputs/sweep/s1/latest", str(trials[0])])
    assert found == [t.resolve() for t in trials]  # each once, in the order given
    assert read_run(found[1]).command == "train"
