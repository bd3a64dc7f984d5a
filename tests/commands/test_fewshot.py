"""`kta fewshot`: novel classes of a trained checkpoint, its baselines, and one-line refusals."""

import pytest

from tests.fewshot.conftest import base_ckpt  # noqa: F401  (session fixture)

NOVEL = ["data.classes=[5,6,7,8,9]", "fewshot.episodes=40", "logger=none"]


def test_fewshot_on_novel_digits_reports_every_method_and_shot(kta, base_ckpt):  # noqa: F811
    result = kta("fewshot", f"ckpt={base_ckpt}", *NOVEL, "fewshot.shots=[1,5]")
    assert result.code == 0, result.err
    metrics = result.metrics("fewshot")
    assert metrics["parent"] == str(base_ckpt) and metrics["novel_classes"] == list("56789")
    assert metrics["base_images"] > 0  # CL2N centred on the base classes 0-4
    for method in ("nc_un", "nc_l2n", "nc_cl2n", "knn", "logreg"):
        for shots in ("1", "5"):
            summary = metrics["results"][method][shots]
            assert 0.2 <= summary["mean"] <= 1 and 0 < summary["ci95"] < 0.2
            assert summary["episodes"] == 40
    # five shots of a class describe it better than one, whatever the features
    assert metrics["results"]["nc_cl2n"]["5"]["mean"] > metrics["results"]["nc_cl2n"]["1"]["mean"]
    assert (result.run_dir("fewshot") / "accuracy_vs_shots.png").stat().st_size > 5000
    assert "NC (CL2N)" in result.out and "1-shot" in result.out


def test_pixel_and_random_baselines_and_a_pooled_layer_grid(kta, base_ckpt):  # noqa: F811
    fast = [f"ckpt={base_ckpt}", *NOVEL, "fewshot.shots=[1]", "fewshot.methods=[nc_cl2n]"]
    pixels = kta("fewshot", *fast, "fewshot.features=pixels")
    assert pixels.code == 0, pixels.err
    assert pixels.metrics("fewshot")["feature_dim"] == 3 * 16 * 16
    grid = kta("fewshot", *fast, "fewshot.features=random", "layer=layer2", "pool=grid2")
    assert grid.code == 0, grid.err
    assert grid.metrics("fewshot")["feature_dim"] == 48 * 4  # 48 channels x a 2x2 grid
    again = kta("fewshot", *fast, "fewshot.features=random", "layer=layer2", "pool=grid2")
    assert again.metrics("fewshot")["features_cached"] is True
    assert again.metrics("fewshot")["results"] == grid.metrics("fewshot")["results"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["fewshot.ways=6"], "fewshot.ways=6 but the novel data has 5 classes"),
        (["fewshot.queries=60"], "shots + queries = 1 + 60 = 61"),
        (["layer=layr2"], "did you mean 'layer2'"),
        (["layer=fc", "pool=grid4"], "needs a (B, C, H, W) layer output"),
        (["fewshot.methods=[protonet]"], "unknown fewshot method 'protonet'"),
        (["fewshot.shots=[0]"], "fewshot.shots[0] must be > 0"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(kta, base_ckpt, args, expected):  # noqa: F811
    result = kta("fewshot", f"ckpt={base_ckpt}", *NOVEL, "fewshot.shots=[1]", *args)
    assert result.code == 2, result.err
    assert len(result.err.strip().splitlines()) == 1 and expected in result.err
