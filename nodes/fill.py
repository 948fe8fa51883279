"""Encode's masked_content "fill": the masked pixels replaced by a smooth fill grown from the pixels around
the mask, apart from any UI. Torch only.

The fill is the harmonic (membrane) interpolant of the kept pixels: each filled pixel is the mean of its four
neighbours, so it takes the colours at the mask's border, follows linear gradients exactly and meets the kept
pixels without a jump. It is solved coarse to fine (push-pull): the pull phase averages the kept pixels down a
2x pyramid until no cell is unknown; the push phase brings each level's solution up a level (bilinear) and
relaxes it there (SMOOTHING Jacobi sweeps with the kept cells fixed). Only the box around the mask (plus a
margin) is solved, so a small mask on a large picture costs what the mask's size costs.
"""
import torch
import torch.nn.functional as F

# Jacobi sweeps per pyramid level: the error an upsampled coarse solution leaves is a cell or two wide.
SMOOTHING = 24
MOST_SWEEPS = 192  # coarse levels are tiny: past this, a sweep's own overhead is all they cost
MARGIN = 4          # kept pixels around the mask's box that the solve sees (at least 1: the border ring)
FULL_MASK_GREY = 0.5  # no kept pixel to grow from (the whole picture is masked): the host's inpaint grey


def fill(pixels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """IMAGE (b, h, w, c) with every pixel whose mask (b or 1, h, w) is above 0 replaced by the fill grown from
    the pixels where it is 0; those are returned bit for bit. A picture with no kept pixel is FULL_MASK_GREY."""
    mask = mask.expand(pixels.shape[0], *mask.shape[1:])
    out = pixels.clone()
    for i in range(pixels.shape[0]):
        hole = mask[i] > 0
        if not bool(hole.any()):
            continue
        if bool(hole.all()):
            out[i] = FULL_MASK_GREY
            continue
        rows, cols = hole.any(1).nonzero(), hole.any(0).nonzero()
        y0, y1 = max(int(rows[0]) - MARGIN, 0), min(int(rows[-1]) + 1 + MARGIN, hole.shape[0])
        x0, x1 = max(int(cols[0]) - MARGIN, 0), min(int(cols[-1]) + 1 + MARGIN, hole.shape[1])
        window = pixels[i, y0:y1, x0:x1].movedim(-1, 0).float()
        known = ~hole[y0:y1, x0:x1]  # the box's margin, or the rest of the picture: never empty
        solved = harmonic_fill(window, known).movedim(0, -1).to(pixels.dtype)
        part = out[i, y0:y1, x0:x1]
        out[i, y0:y1, x0:x1] = torch.where(hole[y0:y1, x0:x1, None], solved, part)
    return out


def harmonic_fill(values: torch.Tensor, known: torch.Tensor, sweeps: int = SMOOTHING) -> torch.Tensor:
    """(c, h, w) values and (h, w) bool known (at least one True) -> (c, h, w): the known cells as given, the
    others the coarse-to-fine harmonic interpolant of them (module docstring). Each coarser level gets twice
    the sweeps (a quarter of the cells), up to MOST_SWEEPS: the slow, wide modes settle there."""
    if bool(known.all()):
        return values
    coarse_values, coarse_known = pull(values, known)
    start = harmonic_fill(coarse_values, coarse_known, min(2 * sweeps, MOST_SWEEPS))
    up = F.interpolate(start[None], scale_factor=2, mode="bilinear", align_corners=False)[0]
    up = up[:, :values.shape[1], :values.shape[2]]
    return relax(torch.where(known, values, up), values, known, sweeps)


def pull(values: torch.Tensor, known: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One level down: each 2x2 block's mean over its known cells, known where any of them is (odd sides are
    padded with unknown cells)."""
    pad = (0, values.shape[2] % 2, 0, values.shape[1] % 2)
    weight = F.pad(known.to(values.dtype)[None], pad)
    total = F.avg_pool2d(F.pad(values * known, pad)[None], 2)[0]
    count = F.avg_pool2d(weight[None], 2)[0]
    return total / count.clamp_min(1e-12), count[0] > 0


def relax(x: torch.Tensor, values: torch.Tensor, known: torch.Tensor, sweeps: int) -> torch.Tensor:
    """`sweeps` Jacobi sweeps of Laplace's equation on the unknown cells, the known ones held at `values`;
    the picture's edges reflect (no flow across them)."""
    for _ in range(sweeps):
        p = F.pad(x[None], (1, 1, 1, 1), mode="replicate")[0]
        mean = (p[:, :-2, 1:-1] + p[:, 2:, 1:-1] + p[:, 1:-1, :-2] + p[:, 1:-1, 2:]) / 4
        x = torch.where(known, values, mean)
    return x
