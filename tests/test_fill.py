"""Encode's masked_content "fill" on its own (nodes/fill.py): pure maths, no model. Pixel space, so no VAE round
trip hides a seam: kept pixels exact, a smooth continuation of the background, no jump at the mask's border,
any size and any mask."""
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sdedit_img2img.nodes.fill import FULL_MASK_GREY, fill

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def background(height: int, width: int) -> torch.Tensor:
    """A smooth picture (1, h, w, 3): gradients and one slow wave."""
    y = torch.linspace(0, 1, height).view(height, 1)
    x = torch.linspace(0, 1, width).view(1, width)
    wave = 0.15 * torch.sin(3 * x) * torch.cos(2 * y)
    return torch.stack([0.2 + 0.5 * x + 0.2 * y, 0.6 - 0.3 * y + 0 * x, 0.4 + wave], -1)[None]


def busy_object(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """A busy object (random pixels and stripes) to paint over the background."""
    g = torch.Generator().manual_seed(seed)
    stripes = (torch.arange(width) // 3 % 2).float().view(1, width, 1).expand(height, width, 3)
    return (0.5 * torch.rand(height, width, 3, generator=g) + 0.5 * stripes)[None]


@st.composite
def pictures_and_masks(draw):
    height, width = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    batch = draw(st.integers(1, 2))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    pixels = torch.rand(batch, height, width, 3, generator=g)
    kind = draw(st.sampled_from(["random", "box", "empty", "full", "pixel", "grey"]))
    mask = torch.zeros(draw(st.sampled_from([1, batch])), height, width)
    if kind == "random":
        mask = (torch.rand(mask.shape, generator=g) < draw(st.floats(0.05, 0.95))).float()
    elif kind == "box":
        y0, x0 = draw(st.integers(0, height - 1)), draw(st.integers(0, width - 1))
        mask[:, y0:draw(st.integers(y0 + 1, height)), x0:draw(st.integers(x0 + 1, width))] = 1.0
    elif kind == "full":
        mask[:] = 1.0
    elif kind == "pixel":
        mask[:, draw(st.integers(0, height - 1)), draw(st.integers(0, width - 1))] = 1.0
    elif kind == "grey":
        mask = torch.rand(mask.shape, generator=g) * (torch.rand(mask.shape, generator=g) < 0.5)
    return pixels, mask


@PROPERTY
@given(pictures_and_masks())
def test_kept_pixels_exact_and_filled_ones_within_the_kept_colours(case):
    pixels, mask = case
    out = fill(pixels, mask)
    assert out.shape == pixels.shape and out.dtype == pixels.dtype
    hole = (mask > 0).expand(pixels.shape[0], *mask.shape[1:])
    assert torch.equal(out[~hole], pixels[~hole]), "pixels where the mask is 0 come back bit for bit"
    for i in range(pixels.shape[0]):
        if bool(hole[i].all()):
            assert bool((out[i] == FULL_MASK_GREY).all()), "nothing kept to grow from: the host's inpaint grey"
        elif bool(hole[i].any()):
            kept = pixels[i][~hole[i]]
            filled = out[i][hole[i]]
            # A fill of means of means: never outside the range of the colours it grows from.
            assert bool((filled >= kept.amin(0) - 1e-6).all()) and bool((filled <= kept.amax(0) + 1e-6).all())
    assert torch.isfinite(out).all()


def test_an_empty_mask_changes_nothing():
    pixels = busy_object(9, 13)
    assert torch.equal(fill(pixels, torch.zeros(1, 9, 13)), pixels)


def test_one_pixel_is_the_mean_of_its_four_neighbours():
    pixels = busy_object(12, 15, seed=3)
    mask = torch.zeros(1, 12, 15)
    mask[0, 5, 7] = 1.0
    out = fill(pixels, mask)
    p = pixels[0]
    expected = (p[4, 7] + p[6, 7] + p[5, 6] + p[5, 8]) / 4
    assert torch.allclose(out[0, 5, 7], expected, atol=1e-6)


@PROPERTY
@given(st.integers(8, 48), st.integers(8, 48), st.data())
def test_a_linear_gradient_is_continued_exactly(height, width, data):
    """Harmonic: a plane through the kept pixels is the fill, for any hole that the kept pixels surround."""
    y0, x0 = data.draw(st.integers(1, height - 2)), data.draw(st.integers(1, width - 2))
    y1, x1 = data.draw(st.integers(y0 + 1, height - 1)), data.draw(st.integers(x0 + 1, width - 1))
    a, b = data.draw(st.floats(-1, 1)), data.draw(st.floats(-1, 1))
    y = torch.arange(height, dtype=torch.float32).view(height, 1) / 48
    x = torch.arange(width, dtype=torch.float32).view(1, width) / 48
    plane = (0.5 + a * x + b * y).expand(height, width)[None, :, :, None].expand(1, height, width, 3)
    pixels = plane.clone()
    pixels[:, y0:y1, x0:x1] = torch.rand(1, y1 - y0, x1 - x0, 3)
    mask = torch.zeros(1, height, width)
    mask[:, y0:y1, x0:x1] = 1.0
    error = (fill(pixels, mask) - plane).abs().max()
    assert float(error) < 0.01 * (abs(a) + abs(b)) + 1e-5


def test_a_busy_object_on_a_smooth_background_is_replaced_by_the_background():
    """The filled pixels continue the background (their difference to the background's own continuation is
    small next to the object's), and the border has no jump larger than the background's own steps."""
    height, width = 96, 128
    bg = background(height, width)
    mask = torch.zeros(1, height, width)
    mask[:, 30:70, 40:90] = 1.0
    pixels = bg.clone()
    pixels[:, 30:70, 40:90] = busy_object(40, 50)
    out = fill(pixels, mask)
    hole = mask[0] > 0
    continuation = (out[0][hole] - bg[0][hole]).abs()
    assert float(continuation.mean()) < 0.01 and float(continuation.max()) < 0.03
    assert float((pixels[0][hole] - bg[0][hole]).abs().mean()) > 0.2  # what the object was
    # Across the border: |filled - kept neighbour| at most the background's own step there, plus a little.
    for filled, kept in ((out[0, 30, 40:90], out[0, 29, 40:90]), (out[0, 69, 40:90], out[0, 70, 40:90]),
                         (out[0, 30:70, 40], out[0, 30:70, 39]), (out[0, 30:70, 89], out[0, 30:70, 90])):
        own_step = float((bg[0, 1:] - bg[0, :-1]).abs().max().clamp_min((bg[0, :, 1:] - bg[0, :, :-1]).abs().max()))
        assert float((filled - kept).abs().max()) <= 2 * own_step


def test_a_mask_at_the_picture_edge_and_a_batch_of_different_masks():
    """Each picture of a batch with its own mask; a hole touching the edge grows from the side it has."""
    bg = background(40, 56).repeat(2, 1, 1, 1)
    pixels = bg.clone()
    mask = torch.zeros(2, 40, 56)
    mask[0, :, :20] = 1.0   # the left edge, top to bottom
    mask[1, 10:30, 30:50] = 1.0
    pixels[mask > 0] = 1.0
    out = fill(pixels, mask)
    assert torch.equal(out[0][mask[0] == 0], pixels[0][mask[0] == 0])
    assert torch.equal(out[1][mask[1] == 0], pixels[1][mask[1] == 0])
    assert float((out[1] - bg[1]).abs().max()) < 0.03
    # The left band meets the column it grows from, and keeps its mean colour (no flow across the edges).
    assert float((out[0, :, 19] - pixels[0, :, 20]).abs().max()) < 0.02
    assert torch.allclose(out[0, :, 0].mean(0), pixels[0, :, 20].mean(0), atol=0.02)
