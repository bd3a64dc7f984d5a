"""format=tensorrt's choice of tool and its refusals; trtexec's command line, run against a
stand-in trtexec (a real one needs a CUDA machine with TensorRT)."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest
import torch

from kta_cli.errors import KtaError
from kta_cli.export.tensorrt import tensorrt_tool, with_trtexec

FAKE_TRTEXEC = """#!/bin/sh
for arg in "$@"; do
  case "$arg" in --saveEngine=*) printf engine > "${arg#--saveEngine=}";; esac
done
echo "$@" > "$(dirname "$0")/args.txt"
echo "[I] Latency: min = 0.1 ms, max = 0.2 ms, mean = 0.15 ms"
"""


def test_without_cuda_it_says_what_it_needs(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(KtaError, match="needs a CUDA machine with torch-tensorrt or trtexec"):
        tensorrt_tool()


def test_cuda_without_either_tool_says_how_to_get_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(KtaError, match="pip install torch-tensorrt"):
        tensorrt_tool()


def test_trtexec_builds_the_engine_for_batch_one_to_n(tmp_path: Path, monkeypatch):
    tool = tmp_path / "bin" / "trtexec"
    tool.parent.mkdir()
    tool.write_text(FAKE_TRTEXEC)
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tool.parent}:{os.environ['PATH']}")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert tensorrt_tool() == "trtexec"
    built = with_trtexec(
        tmp_path / "model.onnx", tmp_path / "model.engine", torch.zeros(2, 3, 16, 16), 8
    )
    assert (tmp_path / "model.engine").read_text() == "engine"
    args = (tool.parent / "args.txt").read_text()
    assert "--minShapes=images:1x3x16x16" in args and "--maxShapes=images:8x3x16x16" in args
    assert built["tool"] == "trtexec" and "Latency" in built["trtexec_summary"][0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "model.engine"]
