"""Shape against texture: class-bound textures, the cue-conflict set, and shape bias."""

import pytest
import torch

from kta_cli.data.datasets import DataSpec, build_data, spec_from_dict
from kta_cli.data.shapes import SHAPES, _class_texture, draw_shapes
from kta_cli.engine.evaluate import cue_conflict_scores
from kta_cli.errors import KtaError


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cue_conflict_never_pairs_a_shape_with_its_own_texture(seed):
    drawn = draw_shapes(240, size=16, style="cue_conflict", seed=seed)
    assert (drawn.texture_labels != drawn.shape_labels).all()
    assert set(drawn.texture_labels.tolist()) == set(range(len(SHAPES)))
    # every other texture turns up for every shape: B is drawn from all classes but A
    pairs = set(zip(drawn.shape_labels.tolist(), drawn.texture_labels.tolist(), strict=True))
    assert len(pairs) == len(SHAPES) * (len(SHAPES) - 1)


def test_class_texture_binds_each_class_to_its_own_texture_and_keeps_the_shapes():
    bound = draw_shapes(120, size=16, style="class_texture", seed=4)
    conflict = draw_shapes(120, size=16, style="cue_conflict", seed=4)
    flat = draw_shapes(120, size=16, style="flat", seed=4)
    assert torch.equal(bound.texture_labels, bound.shape_labels)
    assert torch.equal(bound.shape_labels, conflict.shape_labels)
    assert (flat.texture_labels == -1).all()
    # the same placements in every style: foreground pixels are coloured, the background grey
    for images in (bound.images, conflict.images):
        assert torch.equal(coloured(images), coloured(flat.images))


def coloured(images: torch.Tensor) -> torch.Tensor:
    """Pixels whose channels differ: the shape (palette colours) against a grey background."""
    return (images[:, 0] != images[:, 1]) | (images[:, 1] != images[:, 2])


def test_stripes_run_the_way_their_name_says():
    # texture 0 (horizontal stripes) is constant along each row, texture 1 along each column
    g = torch.Generator().manual_seed(0)
    horizontal, vertical = _class_texture(torch.tensor([0, 1]), 16, g)
    assert torch.allclose(horizontal, horizontal[:, :1].expand(16, 16))
    assert torch.allclose(vertical, vertical[:1, :].expand(16, 16))
    assert horizontal.std(dim=0).mean() > 0.1  # ... and varies down the columns


def test_own_texture_share_mixes_in_other_classes_textures():
    drawn = draw_shapes(600, size=8, style="class_texture", seed=0, own_texture_share=0.5)
    own = (drawn.texture_labels == drawn.shape_labels).float().mean().item()
    assert 0.42 < own < 0.58


def test_cue_conflict_set_with_a_class_subset_draws_textures_from_those_classes():
    spec = DataSpec(
        name="shapes",
        img_size=8,
        per_class=20,
        classes=[1, 3, 5],
        style="class_texture",
        test_style="cue_conflict",
    )
    data = build_data(spec)
    test_labels = torch.cat([labels for _, labels in data.test])
    textures = data.texture_labels["test"]
    assert len(textures) == len(test_labels)
    # relabelled like the classes (1, 3, 5 -> 0, 1, 2), never the image's own shape
    assert (textures != test_labels).all() and set(textures.tolist()) == {0, 1, 2}


def test_an_unknown_style_is_refused_with_a_suggestion():
    with pytest.raises(KtaError, match="unknown data.test_style 'cue_conflit'; did you mean"):
        spec_from_dict({"name": "shapes", "test_style": "cue_conflit"})


def test_shape_bias_on_hand_made_decisions():
    # shape   : 0 0 1 1 2 2 3
    # texture : 1 2 0 2 0 1 3  (the last image's cues agree: left out)
    # predict : 0 2 1 2 1 2 3  -> shape, texture, shape, texture, neither, shape, (left out)
    # shape decisions 3, texture decisions 2, neither 1 (left out):  bias 3 / 5 = 0.6
    # shape acc 3 / 6 = 0.5, texture acc 2 / 6 = 1 / 3 over the six conflict images
    shape = torch.tensor([0, 0, 1, 1, 2, 2, 3])
    texture = torch.tensor([1, 2, 0, 2, 0, 1, 3])
    predicted = torch.tensor([0, 2, 1, 2, 1, 2, 3])
    scores = cue_conflict_scores(predicted, shape, texture)
    assert scores["cue_conflict_images"] == 6
    assert (scores["shape_decisions"], scores["texture_decisions"]) == (3, 2)
    assert scores["shape_bias"] == pytest.approx(0.6)
    assert scores["shape_acc"] == pytest.approx(0.5)
    assert scores["texture_acc"] == pytest.approx(1 / 3)


def test_shape_bias_is_undefined_when_no_decision_names_a_cue():
    scores = cue_conflict_scores(torch.tensor([2]), torch.tensor([0]), torch.tensor([1]))
    assert scores["shape_bias"] is None and scores["shape_acc"] == 0.0
