"""Strength per pixel, apart from any UI: a grey mask is a map of diffusion times, not a blend.

A pixel whose mask is m is edited at strength m x `strength`. Its latent joins the denoising at exactly
the model's noise level for that strength (`start_sigma`, the level a whole picture at m x strength starts
from) and is held until then on the clean latent, re-noised with Add Noise's own noise to each level (the
host's inpaint blend, with a mask that is 0 or 1 at every step). The run's schedule is that of its most
edited pixels (the map's largest value) with every other join level added, so each part starts at its own
level, not at the nearest step; the sampler runs once per join level, from one level to the next, and the
parts that join at each level are set to their re-noised clean latent there. A map of one value c is then
the plain chain at strength c x strength, bit for bit.

A latent cell covers several pixels: it takes the largest value among them (the most edited pixel), so
the levels of a cell are the mask's own and none is made up between two of them. Pixels at 0 are kept
bit for bit by Decode, whatever their cell.

Each join level costs one model call more, so the map is read in bins: the values in one bin join at one
level, that of the middle of the values the bin holds (a bin with one value keeps it exactly). There are
as many bins as the plain run has steps (at least MAP_BINS), so a bin is at most one step of the run wide:
a feather, whose ramp holds a value per cell, at most doubles the model calls instead of adding one per
value, and no part moves by more than half a step.

The maths are small pure functions; `denoise_group` is the mode that plugs the map into the engine's `run`
(nodes/engine.py), as `tiles.tiled_guider` plugs tiling in.
"""
import copy
import logging
import math

import torch
import torch.nn.functional as F

from . import checks, engine
from .sdedit_math import add_noise, shuffled_noise, start_sigma

# Two join levels this close (relative) are one: float32 schedules round-trip a level to about 1e-7.
SAME_LEVEL = 1e-6
MAP_BINS = 4


def bins_for(steps: int) -> int:
    """Bins of the map for a run of `steps` steps at the full strength: none wider than a step."""
    return max(MAP_BINS, steps)


def binned(values: list, bins: int = MAP_BINS) -> dict:
    """{map value: the value it joins at}: values above 0 in one bin ((k-1)/bins, k/bins] share the middle of
    the bin's smallest and largest value; a value alone in its bin is its own."""
    groups = {}
    for v in values:
        if v > 0.0:
            groups.setdefault(min(bins, max(1, math.ceil(min(1.0, v) * bins))), []).append(v)
    return {v: (min(group) + max(group)) / 2 for group in groups.values() for v in group}


def is_binary(mask: torch.Tensor) -> bool:
    """Only 0 and 1: the plain keep/edit mask, which runs the host's inpaint blend as before."""
    return bool(((mask == 0) | (mask == 1)).all())


def latent_map(mask: torch.Tensor, latent_shape) -> torch.Tensor:
    """A mask (b, 1, H, W), (b, H, W) or per frame -> (batch, 1, *latent grid): each cell the largest value of
    the pixels it covers. Video latents (5-D) take all frames as one video, as the host's reshape_mask does."""
    batch, grid = latent_shape[0], tuple(latent_shape[2:])
    m = mask.float()
    if len(grid) == 2:
        m = F.adaptive_max_pool2d(m.reshape(-1, 1, *m.shape[-2:]), grid)
    else:
        m = m.reshape(-1, 1, *m.shape[-3:]) if m.ndim == 5 else m.reshape(1, 1, -1, *m.shape[-2:])
        m = F.adaptive_max_pool3d(m, grid)
    if m.shape[0] != batch:
        m = m.repeat((math.ceil(batch / m.shape[0]),) + (1,) * (m.ndim - 1))[:batch]
    return m


def join_levels(model_sampling, strength: float, cells: torch.Tensor,
                bins: int = MAP_BINS) -> tuple[torch.Tensor, list]:
    """(the join level of every cell, the distinct levels above 0, highest first). A cell at 0 joins never (0)."""
    join = torch.zeros_like(cells, dtype=torch.float64)
    levels = []
    for value, joins_at in binned(torch.unique(cells).tolist(), bins).items():
        sigma = start_sigma(model_sampling, min(1.0, joins_at) * strength)
        join[cells == value] = sigma
        if sigma > 0.0 and not any(math.isclose(sigma, s, rel_tol=SAME_LEVEL) for s in levels):
            levels.append(sigma)
    return join, sorted(levels, reverse=True)


def top_strength(cells: torch.Tensor, strength: float, bins: int = MAP_BINS) -> float:
    """The strength of the map's most edited cells: the run's own schedule is theirs."""
    return min(1.0, max(binned(torch.unique(cells).tolist(), bins).values(), default=0.0)) * strength


def map_schedule(sigmas: torch.Tensor, levels: list) -> torch.Tensor:
    """`sigmas` (highest first, ending at 0) with every join level it lacks added in order."""
    known = [float(s) for s in sigmas]
    added = [s for s in levels if not any(math.isclose(s, k, rel_tol=SAME_LEVEL) for k in known)]
    if not added:
        return sigmas
    merged = torch.cat([sigmas, sigmas.new_tensor(added)])
    return merged.sort(descending=True).values


def segments(schedule: torch.Tensor, levels: list) -> list:
    """The schedule cut at every join level below the first: [(level, sigmas from it to the next level or 0)]."""
    values = [float(s) for s in schedule]

    def index(level):
        return min(range(len(values)), key=lambda i: abs(values[i] - level))

    starts = [index(level) for level in levels] + [len(values) - 1]
    return [(level, schedule[starts[k]:starts[k + 1] + 1]) for k, level in enumerate(levels)]


def joined(join: torch.Tensor, level: float) -> torch.Tensor:
    """Cells denoised from `level` on: those whose join level is `level` or above."""
    return join >= level * (1.0 - SAME_LEVEL)


def joining(join: torch.Tensor, level: float) -> torch.Tensor:
    """Cells that join exactly at `level`."""
    return (join - level).abs() <= level * SAME_LEVEL


# --- the run ------------------------------------------------------------------------------------------------

def denoise_group(guider, sampler, group: engine.Group, plan: engine.Plan):
    """The engine's mode for a Denoise node: a grey mask (a strength per pixel) runs by the map; no mask or a 0/1
    one is the plain run (engine.whole, the host's inpaint blend)."""
    if group.mask is None or is_binary(group.mask):
        return engine.whole(guider, sampler, group, plan)
    model_sampling = plan.model_sampling
    cells = latent_map(group.mask, group.noisy.shape)
    bins = bins_for(len(plan.sigmas(group.strength, group.sigma)) - 1)
    join, levels = join_levels(model_sampling, group.strength, cells, bins)
    top = top_strength(cells, group.strength, bins)
    sigmas = map_schedule(plan.sigmas(top, start_sigma(model_sampling, top)), levels)
    if len(sigmas) < 2:  # a strength so small that the map's top level is 0: no step, as at strength 0
        return group.noisy, group.noisy, sigmas
    # Grey parts join from this round's latent (a repeat's: the last result); kept parts stay the input's.
    start = torch.stack([r.clean if r.start is None else r.start for r in group.records]).to(group.noisy.dtype)
    held = torch.where(cells.to(start.device) > 0, start, group.clean)
    out, trajectory = denoise_by_map(without_mask_function(guider), sampler, sigmas, group.noisy, group.seed, held,
                                     group.noise, join, levels, group.sigma)
    return out, trajectory, sigmas


def denoise_by_map(guider, sampler, sigmas: torch.Tensor, noisy_latent: torch.Tensor, seed: int,
                   clean_latent: torch.Tensor, noise: torch.Tensor, join: torch.Tensor, levels: list,
                   noisy_sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """`engine.denoise` for a strength map: one sampler run from each join level to the next, over `sigmas`
    (the schedule with the join levels in it), each with a 0/1 mask of the cells joined so far. Where a part
    joins, its latent is set to its clean latent noised with Add Noise's noise to that level, made as Add Noise
    makes it; the parts at Add Noise's own level start from `noisy_latent` itself."""
    model = guider.model_patcher
    model_sampling, latent_format = model.get_model_object("model_sampling"), model.get_model_object("latent_format")
    clean_in = latent_format.process_in(clean_latent)
    starting = shuffled_noise(noise, checks.freenoise(model), seed)  # Add Noise's, FreeNoise's shuffle and all
    parts = segments(sigmas, levels)
    total, done, predictions = len(sigmas) - 1, 0, []
    step_callback = engine.progress_callback(model, total, predictions)
    x = None
    for k, (level, part) in enumerate(parts):
        held = latent_format.process_out(add_noise(model_sampling, clean_in, starting, level))
        now = joining(join, level).to(held.device)
        if x is None:
            x = torch.where(now, noisy_latent, held) if abs(level - noisy_sigma) <= level * SAME_LEVEL else held
        else:
            x = torch.where(now, held, x.to(held.device))
        mask = joined(join, level).to(noisy_latent.dtype)
        offset = done
        x = engine.sample(guider, sampler, part, x, seed, clean_latent, noise, mask,
                          lambda step, x0, xs, _, offset=offset: step_callback(offset + step, x0, xs, total),
                          final=k == len(parts) - 1)
        done += len(part) - 1
    return x, engine.trajectory_of(model, x, predictions)


def without_mask_function(guider, node: str = engine.NODE):
    """A shallow copy of `guider` without a denoise_mask_function (the host's DifferentialDiffusion): a strength
    map already says when each part joins, and the patch would threshold the map a second time."""
    if "denoise_mask_function" not in guider.model_options:
        return guider
    logging.info("%s: the strength map sets when each part of the picture is denoised; the model's "
                 "denoise_mask_function (Differential Diffusion) is not applied on top of it.", node)
    plain = copy.copy(guider)
    plain.model_options = {k: v for k, v in guider.model_options.items() if k != "denoise_mask_function"}
    return plain
