"""SimCLR's batched views: in range, per-image, reproducible from a seed, exact when identity."""

import torch

from kta_cli.ssl.views import ViewSettings, augment, two_views

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
IDENTITY = ViewSettings(
    crop_scale=(1.0, 1.0),
    crop_ratio=(1.0, 1.0),
    hflip=0.0,
    jitter=0.0,
    jitter_p=0.0,
    grayscale_p=0.0,
    blur_p=0.0,
)


def images(n: int = 6, size: int = 16) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(1))


def normalised(raw: torch.Tensor) -> torch.Tensor:
    return (raw - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def test_views_stay_in_range_and_differ_per_image():
    raw = images()
    view1, view2 = two_views(normalised(raw), ViewSettings(), mean=MEAN, std=STD)
    for view in (view1, view2):
        back = view * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)
        assert view.shape == raw.shape and torch.isfinite(view).all()
        assert back.min() >= -1e-5 and back.max() <= 1 + 1e-5
    assert not torch.allclose(view1, view2)  # the two views of an image differ
    # Every image gets its own parameters: the same picture six times gives six views.
    same = raw[:1].expand(6, -1, -1, -1).contiguous()
    views = augment(same, ViewSettings(), torch.Generator().manual_seed(0))
    assert len({tuple(v.flatten()[:20].tolist()) for v in views}) == 6


def test_views_are_reproducible_from_a_seed():
    raw = images()
    first = augment(raw, ViewSettings(), torch.Generator().manual_seed(3))
    again = augment(raw, ViewSettings(), torch.Generator().manual_seed(3))
    other = augment(raw, ViewSettings(), torch.Generator().manual_seed(4))
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)
    # Without a generator they come from torch's global one, which the loop saves each step.
    torch.manual_seed(5)
    global_first = augment(raw, ViewSettings())
    torch.manual_seed(5)
    assert torch.equal(global_first, augment(raw, ViewSettings()))


def test_identity_settings_return_the_image_and_a_certain_flip_mirrors_it():
    raw = images()
    assert torch.allclose(augment(raw, IDENTITY), raw, atol=1e-5)
    flipped = ViewSettings(**{**vars(IDENTITY), "hflip": 1.0})
    assert torch.allclose(augment(raw, flipped), raw.flip(-1), atol=1e-5)


def test_greyscale_and_a_full_crop_keep_the_picture():
    raw = images()
    grey = augment(raw, ViewSettings(**{**vars(IDENTITY), "grayscale_p": 1.0}))
    assert torch.allclose(grey[:, 0], grey[:, 1]) and torch.allclose(grey[:, 1], grey[:, 2])
    # Luma weights 0.299, 0.587, 0.114 (ITU-R 601, as torchvision's rgb_to_grayscale).
    luma = 0.299 * raw[:, 0] + 0.587 * raw[:, 1] + 0.114 * raw[:, 2]
    assert torch.allclose(grey[:, 0], luma, atol=1e-3)
    # A crop of a quarter of the area is upsampled: neighbouring pixels become more alike.
    zoom = ViewSettings(**{**vars(IDENTITY), "crop_scale": (0.25, 0.25)})
    zoomed = augment(raw, zoom, torch.Generator().manual_seed(0))
    assert zoomed.diff(dim=-1).abs().mean() < 0.7 * raw.diff(dim=-1).abs().mean()
