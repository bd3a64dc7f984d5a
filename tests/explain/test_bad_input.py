"""Every user mistake in `kta explain` is one line on stderr and exit code 2."""

from __future__ import annotations

import pytest

from tests.explain.conftest import BARE


def fails(result, *fragments: str) -> None:
    assert result.code == 2, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err, result.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_missing_image_path(kta, cnn_ckpt, tmp_path) -> None:
    fails(
        kta("explain", f"ckpt={cnn_ckpt}", f"image={tmp_path}/nope.png", *BARE),
        "image path not found",
        "nope.png",
    )


def test_unreadable_image(kta, cnn_ckpt, tmp_path) -> None:
    (tmp_path / "broken.png").write_text("not an image")
    fails(
        kta("explain", f"ckpt={cnn_ckpt}", f"image={tmp_path}/broken.png", *BARE),
        "unreadable image file",
        "broken.png",
    )


def test_folder_without_images(kta, cnn_ckpt, tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    fails(kta("explain", f"ckpt={cnn_ckpt}", f"image={tmp_path}/empty", *BARE), "no image files")


def test_unknown_layer_lists_valid_ones(kta, cnn_ckpt) -> None:
    fails(
        kta("explain", f"ckpt={cnn_ckpt}", "layer=layer9", *BARE),
        "unknown layer 'layer9'",
        "did you mean",
        "layer4",
    )


def test_layer_without_spatial_output(kta, cnn_ckpt) -> None:
    fails(
        kta("explain", f"ckpt={cnn_ckpt}", "layer=fc", *BARE),
        "not a spatial map",
        "layer1, layer2, layer3",
    )


@pytest.mark.parametrize("method", ["gradcma", "lime"])
def test_unknown_method_lists_them(kta, cnn_ckpt, method) -> None:
    fails(
        kta("explain", f"ckpt={cnn_ckpt}", "--method", method, *BARE),
        f"unknown method '{method}'",
        "integrated_gradients",
        "all",
    )


@pytest.mark.parametrize(
    ("target", "message"), [("12", "not a class index"), ("seven", "unknown target class")]
)
def test_bad_target(kta, cnn_ckpt, target, message) -> None:
    fails(kta("explain", f"ckpt={cnn_ckpt}", f"target={target}", "n=1", *BARE), message)


def test_bad_pattern_channel(kta, cnn_ckpt) -> None:
    fails(
        kta(
            "explain",
            f"ckpt={cnn_ckpt}",
            "n=1",
            "patterns.channels=[500]",
            *BARE,
            "patterns.enabled=true",
        ),
        "out of range",
    )


def test_missing_checkpoint(kta, tmp_path) -> None:
    fails(kta("explain", f"ckpt={tmp_path}/none.ckpt", *BARE), "checkpoint not found")


def test_latest_without_any_trained_run(kta) -> None:
    fails(kta("explain", *BARE), "no run under ./outputs holds a checkpoint")
