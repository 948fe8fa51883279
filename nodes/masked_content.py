"""Encode's masked_content, apart from any UI: what the masked part of the latent starts from (A1111's and
Forge's "masked content"), so that SDEdit can take an object out instead of only changing its look.

    original        the input's own latent (the default; the result before this option, bit for bit)
    fill            the latent of the picture with its masked pixels filled from around the mask (nodes/fill.py);
                    Encode makes it: it needs only pixels and the VAE
    latent noise    N(0, 1) noise in the model's latent space, from Add Noise's seed on a stream of its own
                    (NOISE_SEED_OFFSET), so the SDEdit noise of every other cell stays as it was
    latent nothing  0 in the model's latent space

The last two need the model's latent format (its scale and shift), which only Add Noise has: Encode records the
mode and Add Noise applies it to the latent it noises, so Add Noise's output at strength 0 is what the masked part
starts from in every mode. Only the latent cells the mask covers change (a cell is masked where any pixel it
covers is above 0, as a strength map reads it): every other cell is the input's latent bit for bit.
"""
import torch
import torch.nn.functional as F

from .masking import to_latent_frames
from .strength_map import latent_map

MODES = ("original", "fill", "latent noise", "latent nothing")
IN_ADD_NOISE = ("latent noise", "latent nothing")

# "latent noise" draws from seed + this (mod 2**64; the golden ratio's 64-bit fraction, far from the seed + 1
# the host's ancestral samplers take), so its noise is not the SDEdit noise of the same seed.
NOISE_SEED_OFFSET = 0x9E3779B97F4A7C15


def noise_seed(seed: int) -> int:
    """The seed of "latent noise"'s own stream for Add Noise's `seed`."""
    return (int(seed) + NOISE_SEED_OFFSET) % 2**64


def latent_cells(working_mask: torch.Tensor, latent_shape) -> torch.Tensor:
    """A mask in the frame the VAE saw -> bool (batch, 1, *latent grid): the cells any pixel above 0 falls in.
    Pictures: (1 or batch, 1, H, W), one per picture. A video (one latent row): (frames, 1, H, W), whose per-frame
    masks follow the VAE's own groups of frames (masking.to_latent_frames) where they fit them."""
    m = working_mask.float()
    if len(latent_shape) == 5:
        shape = (1, *latent_shape[1:])
        grouped = to_latent_frames(m, shape[2]) if m.shape[0] > 1 else None
        if grouped is not None:
            return F.adaptive_max_pool3d(grouped, shape[2:]) > 0
        return latent_map(m.reshape(1, 1, -1, *m.shape[-2:]), shape) > 0
    return latent_map(m, latent_shape) > 0


def take_masked(samples: torch.Tensor, content: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """`content` in the masked cells, `samples` (bit for bit) everywhere else."""
    return torch.where(cells.to(samples.device), content.to(samples.device, samples.dtype), samples)


def start_in_add_noise(samples: torch.Tensor, records, latent_format, draw_noise) -> torch.Tensor:
    """The latent Add Noise noises: each clean row whose record asks for "latent noise" or "latent nothing" with
    that content in its masked cells (a row Denoise made carries "original": a repeat starts from its result).
    `draw_noise()` gives N(0, 1) noise of the batch's shape (called once, where needed); the content is made in
    the model's space and brought to the latent's by the model's own latent_format.process_out."""
    rows = [i for i, r in enumerate(records)
            if r.masked_content in IN_ADD_NOISE and r.working_mask is not None and r.sigma is None]
    if not rows:
        return samples
    noise = draw_noise() if any(records[i].masked_content == "latent noise" for i in rows) else None
    out = samples.clone()
    for i in rows:
        row = samples[i:i + 1]
        model_space = noise[i:i + 1] if records[i].masked_content == "latent noise" else torch.zeros_like(row)
        content = latent_format.process_out(model_space.to(row.device, torch.float32))
        out[i:i + 1] = take_masked(row, content, latent_cells(records[i].working_mask, row.shape))
    return out
