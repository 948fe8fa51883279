"""The sampling and tiling widgets that SDEdit 3 · Denoise, its Custom twin and the strength sweep share, and
their checks."""
import comfy.samplers

from . import checks, tiles
from .common import io
from .image_size import LATENT_CELL_PX
from .sdedit_math import STEP_MODES

TILING_OFF = tiles.Tiling()  # the tiling inputs' defaults: today's result, bit for bit


def sampling_inputs() -> list:
    """steps, cfg, sampler_name, scheduler, step_mode: Denoise's sampling widgets, shared by the sweep."""
    return [
        io.Int.Input("steps", default=20, min=1, max=10000,
                     tooltip="Steps of the full schedule; see step_mode for how many run."),
        io.Float.Input("cfg", default=7.0, min=0.0, max=100.0, step=0.1, round=0.01,
                       tooltip="Classifier-free guidance scale: how strongly the prompt steers."),
        io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS,
                       tooltip="The host's sampling algorithm."),
        io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS,
                       tooltip="The host's schedule of noise levels."),
        io.Combo.Input("step_mode", options=list(STEP_MODES), default="proportional",
                       tooltip="proportional: runs round(strength x steps) steps, the tail of the "
                               "steps-step schedule (A1111, diffusers). all: runs all steps from the "
                               "starting noise level (ComfyUI's denoise)."),
    ]


def tiling_inputs() -> list:
    """tiling, tile_size, tile_overlap, tile_batch: optional, and off by default (today's result, bit for bit)."""
    cell = LATENT_CELL_PX
    return [
        io.Combo.Input("tiling", options=list(tiles.TILING_MODES), default="off", optional=True,
                       tooltip="on: the model runs on overlapping tiles of the latent at every step, blended "
                               "into one prediction before the sampler's step (no seams by construction), for "
                               "pictures larger than the model. off: the whole latent at once."),
        io.Int.Input("tile_size", default=TILING_OFF.tile_px, min=0, max=16384, step=cell, optional=True,
                     tooltip="Tile side in pixels. 0: the model's native size (512 for SD1.5, 1024 for SDXL)."),
        io.Int.Input("tile_overlap", default=TILING_OFF.overlap_px, min=0, max=16384, step=cell, optional=True,
                     tooltip="Pixels shared by neighbouring tiles, over which their predictions are blended "
                             "smoothly; at least this much, spread evenly."),
        io.Int.Input("tile_batch", default=TILING_OFF.per_call, min=0, max=1024, optional=True,
                     tooltip="Most tiles per model call. 0: as many as memory allows (fewest calls)."),
    ]


def tiling_of(node: str, tiling: str = "off", tile_size: int = TILING_OFF.tile_px,
              tile_overlap: int = TILING_OFF.overlap_px, tile_batch: int = TILING_OFF.per_call) -> tiles.Tiling | None:
    """The tiling widgets as a Tiling; None: off."""
    checks.refuse(checks.choice(node, "tiling", tiling, tiles.TILING_MODES, "the tiling modes"))
    return None if tiling == "off" else tiles.Tiling(int(tile_size), int(tile_overlap), int(tile_batch))


def schedule_checks(node: str, scheduler, step_mode) -> list:
    return [checks.choice(node, "scheduler", scheduler, comfy.samplers.KSampler.SCHEDULERS, "the host's schedulers"),
            checks.choice(node, "step_mode", step_mode, STEP_MODES, "the step modes")]


def sampling_checks(node: str, cfg, sampler_name, scheduler, step_mode) -> list:
    return [checks.cfg(node, cfg),
            checks.choice(node, "sampler_name", sampler_name, comfy.samplers.KSampler.SAMPLERS, "the host's samplers"),
            *schedule_checks(node, scheduler, step_mode)]
