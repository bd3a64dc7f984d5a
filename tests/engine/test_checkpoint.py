import os
import pickle
from pathlib import Path

import pytest
import torch

from kta_cli.engine import checkpoint as ckpt_module
from kta_cli.engine.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
from kta_cli.errors import KtaError


def test_roundtrip_keeps_tensors_and_metadata(tmp_path: Path):
    path = save_checkpoint(
        tmp_path / "a.ckpt",
        {"model": {"w": torch.arange(4.0)}, "parent": None, "metrics": {"acc": 0.5}},
    )
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["model"]["w"], torch.arange(4.0))
    assert loaded["metrics"] == {"acc": 0.5} and loaded["format"] == "kta-checkpoint"


def test_interrupted_write_leaves_previous_checkpoint_loadable(tmp_path: Path, monkeypatch):
    path = save_checkpoint(tmp_path / "last.ckpt", {"model": {"w": torch.zeros(3)}})

    def crash_midway(obj, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04 partial bytes")
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt_module.torch, "save", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"model": {"w": torch.ones(3)}})
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.zeros(3))
    assert os.listdir(tmp_path) == ["last.ckpt"]  # no temporary file left behind


class RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_crafted_pickle_is_refused_and_never_runs(tmp_path: Path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    torch.save({"format": "kta-checkpoint", "model": RunsCode(marker)}, path)
    with pytest.raises(KtaError, match="refusing to load"):
        load_checkpoint(path)
    assert not marker.exists()
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(RunsCode(marker)))
    with pytest.raises(KtaError):
        load_checkpoint(raw)
    assert not marker.exists()


def test_truncated_and_foreign_files_are_clear_errors(tmp_path: Path):
    good = save_checkpoint(tmp_path / "good.ckpt", {"model": {"w": torch.randn(100, 100)}})
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(KtaError, match="truncated or not a checkpoint"):
        load_checkpoint(truncated)
    text = tmp_path / "notes.ckpt"
    text.write_text("hello")
    with pytest.raises(KtaError):
        load_checkpoint(text)
    plain = tmp_path / "plain.pt"
    torch.save({"w": torch.zeros(1)}, plain)
    with pytest.raises(KtaError, match="not a kta checkpoint"):
        load_checkpoint(plain)
    with pytest.raises(KtaError, match="not found"):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_resolve_accepts_file_run_folder_and_latest(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "outputs" / "train" / "run1"
    best = save_checkpoint(run / "best.ckpt", {"model": {}})
    (tmp_path / "outputs" / "latest").symlink_to(run)
    assert resolve_checkpoint(best) == best.resolve()
    assert resolve_checkpoint(run) == best.resolve()
    assert resolve_checkpoint("latest") == best.resolve()
    with pytest.raises(KtaError):
        resolve_checkpoint(tmp_path / "outputs")


def test_eval_refuses_crafted_checkpoint_with_one_line(kta, tmp_path: Path):
    marker = tmp_path / "pwned"
    torch.save({"format": "kta-checkpoint", "model": RunsCode(marker)}, tmp_path / "evil.ckpt")
    result = kta("eval", f"ckpt={tmp_path / 'evil.ckpt'}", "logger=none")
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1 and "refusing to load" in result.err
    assert not marker.exists()


def model_run(outputs: Path, command: str, name: str, when: float, **meta) -> Path:
    """A run folder holding a checkpoint written at `when`, marked latest as a run marks it."""
    from kta_cli.report.run_folder import mark_latest

    path = save_checkpoint(outputs / command / name / "best.ckpt", {"model": {}, **meta})
    os.utime(path, (when, when))
    mark_latest(path.parent, command)
    return path


def test_latest_is_the_newest_checkpoint_the_command_can_use(tmp_path: Path, caplog):
    """The README order: train, prune, quantize; then `kta prune ckpt=latest` must get the
    pruned float model, not the int8 program, and say why it passed over the newer run."""
    outputs = tmp_path / "outputs"
    trained = model_run(outputs, "train", "t1", 1000.0)
    pruned = model_run(outputs, "prune", "p1", 2000.0, model_kind="pruned")
    int8 = model_run(outputs, "quantize", "q1", 3000.0, model_kind="quantized",
                     quant={"backend": "pt2e_x86"})  # fmt: skip
    assert resolve_checkpoint("latest", outputs) == int8.resolve()  # eval: any model
    with caplog.at_level("INFO", logger="kta_cli.engine.checkpoint"):
        picked = resolve_checkpoint("latest", outputs, usable=ckpt_module.float_only)
    assert picked == pruned.resolve()
    assert "passed over newer quantize/q1: a quantized int8 program" in caplog.text
    assert resolve_checkpoint("latest", outputs, usable=lambda c: "no" if "model_kind" in c
                              else None) == trained.resolve()  # fmt: skip


def test_latest_with_no_usable_run_names_what_it_passed_over(tmp_path: Path):
    outputs = tmp_path / "outputs"
    model_run(
        outputs,
        "quantize",
        "q1",
        3000.0,
        model_kind="quantized",
        quant={"backend": "cast", "mode": "bf16"},
    )
    with pytest.raises(KtaError, match=r"holds a float model \(quantize/q1: a bf16 cast model"):
        resolve_checkpoint("latest", outputs, usable=ckpt_module.float_only)
