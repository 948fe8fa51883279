"""Colour anchoring, apart from any UI: the edited part's colour statistics matched to the input's.

Edited regions drift in colour against the kept ones. In CIE Lab (perceptual: a distance there is the
colour difference ΔE76) each channel of the edited pixels is shifted and scaled so that its mean and
standard deviation over the edited part equal the input's over the same part; `amount` blends between the
decoded colours (0) and the matched ones (1). This is A1111's "colour correction" restricted to the edit.
"""
import torch

# sRGB (D65) <-> CIE XYZ <-> Lab
_RGB_TO_XYZ = torch.tensor([[0.4124564, 0.3575761, 0.1804375],
                            [0.2126729, 0.7151522, 0.0721750],
                            [0.0193339, 0.1191920, 0.9503041]], dtype=torch.float64)
_WHITE = torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64)
_EPS, _KAPPA = 216 / 24389, 24389 / 27


def srgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3) sRGB in [0, 1] -> (..., 3) Lab (L in [0, 100])."""
    c = rgb.double().clamp(0.0, 1.0)
    linear = torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = linear @ _RGB_TO_XYZ.T / _WHITE
    f = torch.where(xyz > _EPS, xyz.clamp_min(1e-12) ** (1 / 3), (_KAPPA * xyz + 16) / 116)
    return torch.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def lab_to_srgb(lab: torch.Tensor) -> torch.Tensor:
    """(..., 3) Lab -> (..., 3) sRGB, clipped to [0, 1]."""
    fy = (lab[..., 0] + 16) / 116
    f = torch.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], -1)
    xyz = torch.where(f ** 3 > _EPS, f ** 3, (116 * f - 16) / _KAPPA) * _WHITE
    linear = (xyz @ torch.linalg.inv(_RGB_TO_XYZ).T).clamp(0.0, 1.0)
    return torch.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055).clamp(0.0, 1.0)


def delta_e(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """ΔE76 between two sRGB images (..., 3): the Lab distance of each pixel."""
    return (srgb_to_lab(a) - srgb_to_lab(b)).norm(dim=-1)


def anchor_colour(original: torch.Tensor, edited: torch.Tensor, where: torch.Tensor | None,
                  amount: float) -> torch.Tensor:
    """IMAGE `edited` (frames, h, w, 3) with the Lab mean and spread over `where` (frames, h, w; True: edited,
    None: the whole picture) of each frame matched to `original`'s there, blended in by `amount` in [0, 1].
    Pixels outside `where` are returned as they were."""
    if amount <= 0.0:
        return edited
    out = edited.clone()
    original = original.to(edited.device)
    for f in range(edited.shape[0]):
        region = torch.ones(edited.shape[1:3], dtype=torch.bool, device=edited.device) if where is None else where[f]
        if not bool(region.any()):
            continue
        lab_edit, lab_orig = srgb_to_lab(edited[f][region]), srgb_to_lab(original[f][region])
        spread_edit, spread_orig = lab_edit.std(0, unbiased=False), lab_orig.std(0, unbiased=False)
        scale = torch.where(spread_edit > 1e-6, spread_orig / spread_edit.clamp_min(1e-6), torch.ones_like(spread_edit))
        matched = (lab_edit - lab_edit.mean(0)) * scale + lab_orig.mean(0)
        lab = lab_edit + amount * (matched - lab_edit)
        out[f][region] = lab_to_srgb(lab).to(edited.dtype)
    return out
