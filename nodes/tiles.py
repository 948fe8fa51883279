"""Tiled denoising (MultiDiffusion-style): the model runs on overlapping tiles of the latent at every step and
the tiles' predictions are blended, with weights that sum to exactly one at every cell, into one prediction
for the whole latent. The sampler then steps on that prediction as if the model had seen the whole latent, so
the schedule, the strength contract, masks and the keep region are those of the untiled run.

The grid and the weights are small pure functions; `tiled_model_function` is the host's
`model_function_wrapper` that runs them, and `tiled_guider` installs it on a copy of a guider.
"""
import copy
import dataclasses
import math

import comfy.model_base
import comfy.model_management
import comfy.model_patcher
import comfy.patcher_extension
import comfy.supported_models
import torch

from .image_size import LATENT_CELL_PX

TILING_MODES = ("off", "on")


# --- the grid and the weights (pure) ----------------------------------------------------------------------

def axis_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Where the tiles start along an axis of `length` cells: the fewest tiles of `tile` cells that cover it
    with at least `overlap` cells shared between neighbours, spread evenly (the last one ends at the edge,
    so every tile has the same size and they batch into one model call). One tile where `tile` >= `length`."""
    if tile >= length:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def tile_grid(height: int, width: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """The tiles (top, left, tile_height, tile_width) of a height x width latent, row by row."""
    th, tw = min(tile, height), min(tile, width)
    return [(y, x, th, tw) for y in axis_starts(height, tile, overlap) for x in axis_starts(width, tile, overlap)]


def axis_ramp(size: int, before: int, after: int) -> torch.Tensor:
    """A tile's raw weight along one axis (float64): a raised-cosine rise over the `before` cells it shares
    with the previous tile, 1 in the middle, a fall over the `after` cells shared with the next. Positive
    everywhere (cell centres), so the normalised weights are defined at every cell."""
    k = torch.arange(size, dtype=torch.float64) + 0.5
    w = torch.ones(size, dtype=torch.float64)
    if before > 0:
        w = torch.minimum(w, 0.5 - 0.5 * torch.cos(math.pi * torch.clamp(k / before, max=1.0)))
    if after > 0:
        w = torch.minimum(w, 0.5 - 0.5 * torch.cos(math.pi * torch.clamp((size - k) / after, max=1.0)))
    return w


def axis_ramps(length: int, starts: list[int], size: int) -> list[torch.Tensor]:
    """Each tile's raw weight along the axis, ramped over its actual overlaps with its neighbours."""
    ramps = []
    for i, s in enumerate(starts):
        before = starts[i - 1] + size - s if i > 0 else 0
        after = s + size - starts[i + 1] if i + 1 < len(starts) else 0
        ramps.append(axis_ramp(size, max(before, 0), max(after, 0)))
    return ramps


def blend_weights(height: int, width: int, tile: int, overlap: int) -> list[torch.Tensor]:
    """Each tile's weight (tile_height x tile_width, float64), in `tile_grid` order: the outer product of its
    axis ramps divided by the sum over all tiles, so that the weights of the tiles covering a cell sum to one
    there (a partition of unity: a prediction that is the same in every tile comes out unchanged)."""
    ys, xs = axis_starts(height, tile, overlap), axis_starts(width, tile, overlap)
    th, tw = min(tile, height), min(tile, width)
    ry, rx = axis_ramps(height, ys, th), axis_ramps(width, xs, tw)
    raw = [(y, x, wy[:, None] * wx[None, :]) for y, wy in zip(ys, ry) for x, wx in zip(xs, rx)]
    total = torch.zeros(height, width, dtype=torch.float64)
    for y, x, w in raw:
        total[y:y + th, x:x + tw] += w
    return [w / total[y:y + th, x:x + tw] for y, x, w in raw]


def calls_per_step(tiles: int, per_call: int, evaluations: int = 1) -> int:
    """Model calls for one model evaluation of the whole latent: tiles in groups of `per_call` (0: all at
    once), times the sampler's evaluations per step."""
    return math.ceil(tiles / (per_call or tiles)) * evaluations


# --- settings ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Tiling:
    """The node's tiling inputs: tile size and overlap in pixels (tile 0: the model's native size) and the
    most tiles per model call (0: as many as memory allows)."""
    tile_px: int = 0
    overlap_px: int = 128
    per_call: int = 0


def native_px(config, model_type) -> int:
    """The side a host model config was trained at: 512 for SD1.x (and SD2.x eps), 768 for SD2.x
    v-prediction, else 1024 (SDXL, SD3, Flux and later)."""
    if isinstance(config, comfy.supported_models.SD20):
        return 768 if model_type == comfy.model_base.ModelType.V_PREDICTION else 512
    if isinstance(config, comfy.supported_models.SD15):
        return 512
    return 1024


def native_tile_px(model_patcher) -> int:
    model = model_patcher.model
    return native_px(getattr(model, "model_config", None), getattr(model, "model_type", None))


def tile_cells(node: str, tiling: Tiling, model_patcher) -> tuple[int, int]:
    """(tile, overlap) in latent cells; refused, by input, where the overlap leaves no stride."""
    tile = (tiling.tile_px or native_tile_px(model_patcher)) // LATENT_CELL_PX
    overlap = tiling.overlap_px // LATENT_CELL_PX
    if tile < 1:
        raise ValueError(f"{node}: input 'tile_size' {tiling.tile_px} px is less than one latent cell "
                         f"({LATENT_CELL_PX} px). Fix: set it to 0 (the model's native size) or a multiple of 64.")
    if overlap >= tile:
        raise ValueError(f"{node}: input 'tile_overlap' ({tiling.overlap_px} px) must be smaller than the tile "
                         f"({tile * LATENT_CELL_PX} px). Fix: lower tile_overlap (a quarter of the tile is usual) "
                         "or raise tile_size.")
    return tile, overlap


# --- the model function -----------------------------------------------------------------------------------

def position_dependent(node: str, conds) -> str | None:
    """An error naming the input where a conditioning carries a ControlNet/T2I hint: its hint covers the whole
    picture and the host computes it for the whole latent, so it cannot be cropped to a tile here."""
    for name, cond in conds:
        for entry in cond or []:
            options = entry[1] if isinstance(entry, (list, tuple)) else entry
            if isinstance(options, dict) and options.get("control") is not None:
                return (f"{node}: input '{name}' carries a ControlNet (Apply ControlNet), which tiled denoising "
                        "cannot crop to each tile. Fix: set tiling to off, or apply the ControlNet in a "
                        "separate untiled pass.")
    return None


def crop(value: torch.Tensor, y: int, x: int, h: int, w: int) -> torch.Tensor:
    return value[..., y:y + h, x:x + w]


def tile_batch_args(args: dict, tiles: list, spatial: tuple[int, int]) -> dict:
    """The wrapper's args for a batch of tiles: the input and every conditioning with the latent's spatial
    size (c_concat of inpainting models, ...) cropped and stacked tile-major; the rest repeated per tile."""
    x, k = args["input"], len(tiles)
    batch = x.shape[0]

    def tiled(value):
        if isinstance(value, torch.Tensor) and value.ndim == x.ndim and value.shape[0] == batch \
                and tuple(value.shape[-2:]) == spatial:
            return torch.cat([crop(value, *t) for t in tiles])
        if isinstance(value, torch.Tensor) and value.ndim >= 1 and value.shape[0] == batch:
            return torch.cat([value] * k)
        return value
    c = {}
    for key, value in args["c"].items():
        if key == "transformer_options":
            value = dict(value)
            for listed in ("cond_or_uncond", "uuids"):
                if listed in value:
                    value[listed] = list(value[listed]) * k
        c[key] = tiled(value)
    return {**args, "input": tiled(x), "timestep": torch.cat([args["timestep"]] * k), "c": c,
            "cond_or_uncond": list(args["cond_or_uncond"]) * k}


def tiles_per_call(apply_model, args: dict, tile_shape: list, limit: int, count: int) -> int:
    """As many tiles per model call as the host's own memory estimate allows (as its cond batching does),
    at most `limit` (0: no limit), at least one."""
    most = min(limit or count, count)
    model = getattr(apply_model, "__self__", None)
    if model is None or not hasattr(model, "memory_required"):
        return most
    free = comfy.model_management.get_free_memory(args["input"].device)
    for k in range(most, 1, -1):
        shape = [k * tile_shape[0]] + list(tile_shape[1:])
        if model.memory_required(shape) * 1.5 < free:
            return k
    return 1


def tiled_model_function(node: str, tile: int, overlap: int, per_call: int, inner=None):
    """A `model_function_wrapper` that runs `inner` (the wrapper it replaces, or the model itself) on the tiles
    and blends them. A latent no larger than one tile goes through unchanged."""
    weights_cache = {}

    def run(apply_model, args):
        call = inner if inner is not None else (lambda f, a: f(a["input"], a["timestep"], **a["c"]))
        x = args["input"]
        height, width = x.shape[-2:]
        if height <= tile and width <= tile:
            return call(apply_model, args)
        control = args["c"].get("control")
        if control is not None:
            raise ValueError(position_dependent(node, [("positive/negative", [{"control": control}])]))
        grid = tile_grid(height, width, tile, overlap)
        key = (height, width, x.device, x.dtype)
        if key not in weights_cache:
            weights_cache[key] = [w.to(x.device, torch.float32) for w in blend_weights(height, width, tile, overlap)]
        weights = weights_cache[key]
        tile_shape = list(x.shape[:-2]) + list(grid[0][2:])
        k = tiles_per_call(apply_model, args, tile_shape, per_call, len(grid))
        out = None
        for first in range(0, len(grid), k):
            comfy.model_management.throw_exception_if_processing_interrupted()  # Cancel between tile batches
            group = grid[first:first + k]
            pred = call(apply_model, tile_batch_args(args, group, (height, width)))
            if out is None:
                out = torch.zeros([x.shape[0], *pred.shape[1:-2], height, width], dtype=pred.dtype, device=pred.device)
            for j, (y, x0, h, w) in enumerate(group):
                part = pred[j * x.shape[0]:(j + 1) * x.shape[0]]
                out[..., y:y + h, x0:x0 + w] += part * weights[first + j].to(pred.dtype)
        return out
    return run


def tile_noise_shape(tile: int):
    """A PREPARE_SAMPLING wrapper: the host loads the model reserving inference memory for the latent it is
    given; with tiles the model only ever sees one tile batch, so it reserves for one tile (the tile batching
    then fills what is free), and a large latent does not push the weights out to low-VRAM mode."""
    def prepare(executor, model, noise_shape, conds, *args, **kwargs):
        shape = list(noise_shape[:-2]) + [min(tile, noise_shape[-2]), min(tile, noise_shape[-1])]
        return executor(model, shape, conds, *args, **kwargs)
    return prepare


def tiled_guider(node: str, guider, tiling: Tiling):
    """A shallow copy of `guider` whose model options run the model on tiles, chaining any
    model_function_wrapper already set (by another node); the user's guider and model are left as they are
    (the host's copy of nested model options copies the wrapper lists too)."""
    tile, overlap = tile_cells(node, tiling, guider.model_patcher)
    checked = position_dependent(node, getattr(guider, "original_conds", {}).items())
    if checked:
        raise ValueError(checked)
    tiled = copy.copy(guider)
    tiled.model_options = comfy.model_patcher.create_model_options_clone(guider.model_options)
    inner = tiled.model_options.get("model_function_wrapper")
    tiled.model_options["model_function_wrapper"] = tiled_model_function(node, tile, overlap, tiling.per_call, inner)
    comfy.patcher_extension.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.PREPARE_SAMPLING, "sdedit_tiles",
                                                 tile_noise_shape(tile), tiled.model_options, is_model_options=True)
    return tiled


def plan(width_px: int | None, height_px: int | None, tile_px: int, overlap_px: int, per_call: int) -> dict:
    """What tiling runs for a picture (px; None: not known): the tile and overlap, and where the size is
    known the tiles and the model calls per model evaluation (one per step for euler-like samplers). With
    per_call 0 (as memory allows) the calls are the fewest, one, which the host's memory may raise."""
    answer = {"tile_px": tile_px, "overlap_px": overlap_px, "tile_batch": per_call}
    if tile_px < LATENT_CELL_PX or overlap_px // LATENT_CELL_PX >= tile_px // LATENT_CELL_PX:
        answer["error"] = "tile_overlap must be smaller than tile_size"
    elif width_px and height_px:
        cells = tile_px // LATENT_CELL_PX
        count = len(tile_grid(-(-height_px // LATENT_CELL_PX), -(-width_px // LATENT_CELL_PX), cells,  # Encode pads
                              overlap_px // LATENT_CELL_PX))
        answer.update(tiles=count, calls=calls_per_step(count, per_call) if count > 1 else 1)
    return answer
