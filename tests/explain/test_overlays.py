"""Grids a person reads on one screen: several images side by side, about a screen's shape."""

import pytest
import torch

from kta_cli.explain.overlays import Row, images_per_line, rows_figure
from kta_cli.report.figures import plt


def rows(count: int, methods: list[str]) -> list[Row]:
    return [
        Row(
            name=f"img{i}",
            image=torch.rand(3, 8, 8),
            heatmaps={m: torch.rand(8, 8) for m in methods},
            predicted="cat",
            probability=0.9,
            true="cat",
        )
        for i in range(count)
    ]


@pytest.mark.parametrize("methods", [["gradcam"], ["gradcam", "saliency", "occlusion"]])
def test_sixteen_images_fill_a_screen_not_a_column(methods):
    figure = rows_figure(rows(16, methods), title="grid")
    width, height = figure.get_size_inches()
    per_image = 1 + len(methods)
    columns = figure.axes[0].get_subplotspec().get_gridspec().ncols
    assert columns > per_image and columns % per_image == 0  # several whole images across
    assert 1.2 < width / height < 2.4  # a screen is 16:9 = 1.78; one column was 0.1
    plt.close(figure)


def test_images_per_line_by_hand():
    # 16 images of 2 pictures (2.1 x 2.3 in each): 4 a line gives 16.8 x 9.2 in, aspect 1.83.
    assert images_per_line(16, 2) == 4
    # With 4 pictures an image: 3 a line, 6 lines: 25.2 x 13.8 in, aspect 1.83.
    assert images_per_line(16, 4) == 3
    assert images_per_line(1, 4) == 1  # the per-image PNG stays one line


def test_one_image_is_one_line_with_every_method():
    figure = rows_figure(rows(1, ["gradcam", "saliency"]))
    assert len(figure.axes) == 3
    plt.close(figure)
