"""`kta explain` end to end on tiny trained checkpoints: files a user would open, and metrics;
every user mistake is one line on stderr and exit code 2."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from kta_cli.explain.methods import METHODS
from tests.settings import EXPLAIN_BARE as BARE
from tests.settings import EXPLAIN_FAST as FAST

pytestmark = pytest.mark.usefixtures("one_thread")
QUIET = ["views.enabled=false", "patterns.enabled=false"]


@pytest.mark.parametrize("model", ["cnn", "vit"])
def test_every_method_runs_and_writes_its_png(kta, model, tiny_ckpt, vit_ckpt) -> None:
    ckpt, n = (tiny_ckpt, 2) if model == "cnn" else (vit_ckpt, 1)
    result = kta("explain", f"ckpt={ckpt}", "--method", "all", f"n={n}", *FAST, *QUIET)
    assert result.code == 0, result.err
    run_dir = result.run_dir("explain")
    metrics = result.metrics("explain")
    assert metrics["methods"] == list(METHODS)
    names = sorted(p.name for p in (run_dir / "images").iterdir())
    assert names == [f"test_{i:04d}.png" for i in range(n)]
    assert (run_dir / "grid.png").is_file() == (n > 1)
    assert (run_dir / "faithfulness.png").is_file()
    assert set(metrics["faithfulness"]) == set(METHODS)
    # at 16x16 layer3 and layer4 are 1x1; the last stage wider than that is layer2
    assert metrics["layer"] == ("layer2" if model == "cnn" else "blocks.5.norm1")
    for prediction in metrics["predictions"]:
        assert prediction["explained"] == prediction["predicted"]  # target: predicted by default
        assert 0.0 <= prediction["probability"] <= 1.0 and prediction["true"] is not None


def write_images(folder: Path) -> None:
    """Two class folders named like digits classes, plus one loose image of unknown class."""
    for label in ("3", "7"):
        (folder / label).mkdir(parents=True)
        Image.new("RGB", (20, 12), (200, 40, 40)).save(folder / label / "a.png")
    Image.new("L", (8, 8), 128).save(folder / "loose.jpg")


def test_image_folder_gives_one_png_per_image_with_true_class(kta, tiny_ckpt, tmp_path) -> None:
    write_images(tmp_path / "pics")
    result = kta("explain", f"ckpt={tiny_ckpt}", "--image", str(tmp_path / "pics"), *FAST)
    assert result.code == 0, result.err
    metrics = result.metrics("explain")
    assert [p["true"] for p in metrics["predictions"]] == ["3", "7", None]
    names = sorted(p.name for p in (result.run_dir("explain") / "images").iterdir())
    assert names == ["a.png", "a_2.png", "loose.png"]
    assert (result.run_dir("explain") / "patterns.png").is_file()


def test_given_target_class_is_explained_for_every_image(kta, tiny_ckpt) -> None:
    result = kta("explain", f"ckpt={tiny_ckpt}", "n=3", "target=4", *BARE)
    assert result.code == 0, result.err
    assert {p["explained"] for p in result.metrics("explain")["predictions"]} == {"4"}


def test_raw_heatmaps_are_saved_as_safetensors(kta, tiny_ckpt) -> None:
    from safetensors import safe_open

    from kta_cli.explain.store import read_heatmaps

    result = kta("explain", f"ckpt={tiny_ckpt}", "n=3", "--method", "[gradcam,saliency]", *BARE)
    assert result.code == 0, result.err
    path = result.run_dir("explain") / "heatmaps.safetensors"
    with safe_open(str(path), framework="pt") as stored:  # no unpickling
        shapes = {tuple(stored.get_tensor(key).shape) for key in stored.keys()}
    assert shapes >= {(3, 16, 16)}  # one N x H x W map per method, 16 px test images
    stored = read_heatmaps(path)
    assert set(stored.heatmaps) == {"gradcam", "saliency"}
    assert len(stored.image_ids) == 3 and len(stored.class_names) == 10


def test_dataset_views_and_layer_override(kta, tiny_ckpt) -> None:
    result = kta(
        "explain", f"ckpt={tiny_ckpt}", "n=2", "layer=layer1", "patterns.channels=[0,5]", *FAST
    )
    assert result.code == 0, result.err
    metrics = result.metrics("explain")
    run_dir = result.run_dir("explain")
    assert metrics["layer"] == "layer1" and metrics["patterns"]["channels"] == [0, 5]
    accuracy = metrics["per_class_acc"]
    assert len(accuracy) == 10 and list(accuracy.values()) == sorted(accuracy.values())
    assert metrics["hardest_classes"][0] == next(iter(accuracy))
    assert (run_dir / "patterns.png").is_file()
    for mistake in metrics["confident_mistakes"]:
        assert mistake["true"] != mistake["predicted"]
    assert (run_dir / "mistakes.png").is_file() == bool(metrics["confident_mistakes"])
    seconds = metrics["seconds"]  # where the time went, so a slow stage is visible
    assert set(seconds["stages"]) == {"load", "methods", "pictures", "faithfulness", "views",
                                      "patterns"}  # fmt: skip
    assert set(seconds["methods"]) == set(metrics["methods"])
    assert all(value >= 0 for value in seconds["stages"].values())


def test_compare_with_itself_agrees_perfectly(kta, tiny_ckpt) -> None:
    result = kta(
        "explain",
        f"ckpt={tiny_ckpt}",
        f"compare={tiny_ckpt}",
        "method=[gradcam,saliency]",
        "n=3",
        *BARE,
    )
    assert result.code == 0, result.err
    compare = result.metrics("explain")["compare"]
    assert (result.run_dir("explain") / "compare.png").is_file()
    assert compare["prediction_agreement"] == 1.0
    for row in compare["methods"].values():
        assert row["pearson"] == pytest.approx(1.0) and row["top10_iou"] == pytest.approx(1.0)


def test_ckpt_latest_still_works_after_an_explain_run(kta, tiny_ckpt, tmp_path) -> None:
    run = tmp_path / "outputs" / "train" / "run1"
    run.mkdir(parents=True)
    shutil.copy(tiny_ckpt, run / "best.ckpt")
    (tmp_path / "outputs" / "train" / "latest").symlink_to("run1")
    (tmp_path / "outputs" / "latest").symlink_to("train/run1")
    for _ in range(2):  # the first run moves outputs/latest to its own folder
        result = kta("explain", "ckpt=latest", "n=1", *BARE)
        assert result.code == 0, result.err
        assert result.metrics("explain")["checkpoint"] == str((run / "best.ckpt").resolve())


# Mistakes: one line on stderr, exit code 2.


def fails(result, *fragments: str) -> None:
    assert result.code == 2, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err, result.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_missing_image_path(kta, tiny_ckpt, tmp_path) -> None:
    fails(
        kta("explain", f"ckpt={tiny_ckpt}", f"image={tmp_path}/nope.png", *BARE),
        "image path not found",
        "nope.png",
    )


def test_unreadable_image(kta, tiny_ckpt, tmp_path) -> None:
    (tmp_path / "broken.png").write_text("not an image")
    fails(
        kta("explain", f"ckpt={tiny_ckpt}", f"image={tmp_path}/broken.png", *BARE),
        "unreadable image file",
        "broken.png",
    )


def test_folder_without_images(kta, tiny_ckpt, tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    fails(kta("explain", f"ckpt={tiny_ckpt}", f"image={tmp_path}/empty", *BARE), "no image files")


def test_unknown_layer_lists_valid_ones(kta, tiny_ckpt) -> None:
    fails(
        kta("explain", f"ckpt={tiny_ckpt}", "layer=layer9", *BARE),
        "unknown layer 'layer9'",
        "did you mean",
        "layer4",
    )


def test_layer_without_spatial_output(kta, tiny_ckpt) -> None:
    fails(
        kta("explain", f"ckpt={tiny_ckpt}", "layer=fc", *BARE),
        "not a spatial map",
        "layer1, layer2, layer3",
    )


@pytest.mark.parametrize("method", ["gradcma", "lime"])
def test_unknown_method_lists_them(kta, tiny_ckpt, method) -> None:
    fails(
        kta("explain", f"ckpt={tiny_ckpt}", "--method", method, *BARE),
        f"unknown method '{method}'",
        "integrated_gradients",
        "all",
    )


@pytest.mark.parametrize(
    ("target", "message"), [("12", "not a class index"), ("seven", "unknown target class")]
)
def test_bad_target(kta, tiny_ckpt, target, message) -> None:
    fails(kta("explain", f"ckpt={tiny_ckpt}", f"target={target}", "n=1", *BARE), message)


def test_bad_pattern_channel(kta, tiny_ckpt) -> None:
    fails(
        kta(
            "explain",
            f"ckpt={tiny_ckpt}",
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
