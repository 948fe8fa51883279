"""A read-only route that tells the canvas what SDEdit 3 · Denoise will run, computed by the backend's
own rule (sdedit_math.step_plan, start_sigma) so the canvas never re-derives it in JavaScript.

σ is quoted on the noise schedule of the model the graph loads where the canvas names its checkpoint
(`ckpt_name`, a file of the host's checkpoints folder, as Load Checkpoint reads it) or its diffusion model
(`unet_name`, a file of the host's diffusion_models folder, as Load Diffusion Model (UNETLoader) reads it:
Wan, Flux, SD3, ... shipped without their text encoders and VAE) and the file is a .safetensors whose
header the host's own model detection recognises: only the header is read (keys, dtypes and shapes; of the
values, only the few small ones the host's model config reads, such as the norm bias that tells SD2.x
v-prediction), the host's model class is built on the meta device (no memory, no weights) and its
model_sampling used. Anything else falls back to SD1.5's schedule, and the answer says so (`assumed`,
`reason`).
"""
import json
import math
import os
import struct

import comfy.model_sampling
import comfy.utils
import folder_paths
import safetensors
import torch
from aiohttp import web

from . import checks, tiles
from .image_size import LATENT_CELL_PX, SIZE_MODES
from .sdedit_math import STEP_MODES, start_sigma, step_plan

ROUTE = "/sdedit/step_plan"
REFERENCE = "SD1.5"
# The host's model configs (comfy.supported_models) by the names users know; others keep the class name.
FAMILY_NAMES = {"SD15": "SD1.5", "SD20": "SD2.x", "SD21UnclipL": "SD2.x unCLIP", "SD21UnclipH": "SD2.x unCLIP",
                "SD15_instructpix2pix": "SD1.5 InstructPix2Pix", "SDXL_instructpix2pix": "SDXL InstructPix2Pix",
                "SDXLRefiner": "SDXL Refiner", "SD3": "SD3", "FluxSchnell": "Flux Schnell", "WAN21_T2V": "Wan 2.1",
                "WAN21_I2V": "Wan 2.1", "QwenImage": "Qwen-Image", "ZImage": "Z-Image", "Lumina2": "Lumina 2"}
_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2, "I64": torch.int64, "I32": torch.int32,
           "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}
DEFAULT_TILING = tiles.Tiling()  # the tiling widgets' defaults
_reference = None
_by_file = {}  # (path, size, mtime_ns) -> (model_sampling, family, native tile px)


def reference_model_sampling():
    """Where no model can be read, sigma is quoted on SD1.5's noise schedule (the host's default)."""
    global _reference
    if _reference is None:
        _reference = comfy.model_sampling.ModelSamplingDiscrete()
    return _reference


def read_header(path: str) -> tuple[dict, dict | None]:
    """A .safetensors file's tensors as {key: (dtype name, shape)} and its __metadata__, from the header only
    (the host's comfy.utils.safetensors_header reads it)."""
    try:
        raw = comfy.utils.safetensors_header(path)
        header = None if raw is None else json.loads(raw)
    except (struct.error, ValueError):  # shorter than the 8-byte length, or not JSON
        header = None
    if not isinstance(header, dict):
        raise ValueError("the file does not start with a .safetensors header")
    metadata = header.pop("__metadata__", None)
    return {k: (v["dtype"], tuple(v["shape"])) for k, v in header.items()}, metadata


SMALL_TENSOR = 4096  # elements: the SD2.x bias has 320, the EDM sigmas 1


class SmallValuesFromFile(dict):
    """The header's tensors on the meta device, but a tensor of at most SMALL_TENSOR elements is read from the file
    where the host's model config asks for its values: SD20.model_type tells v-prediction by the spread of one norm
    bias, SDXL's reads its EDM sigmas. A weight of any size stays unread."""

    def __init__(self, meta: dict, path: str, file_prefix: str):
        super().__init__(meta)
        self.path, self.file_prefix = path, file_prefix

    def __getitem__(self, key):
        value = super().__getitem__(key)
        if value.device.type == "meta" and value.numel() <= SMALL_TENSOR:
            with safetensors.safe_open(self.path, "pt") as f:
                value = f.get_tensor(self.file_prefix + key)
            self[key] = value
        return value

    def get(self, key, default=None):
        return self[key] if key in self else default


def model_sampling_from_header(path: str, diffusion_model: bool = False):
    """(model_sampling, family name, native tile px) of the checkpoint at `path` (with `diffusion_model`: of
    the diffusion model file, as UNETLoader reads it), by the host's own detection on its header."""
    import comfy.model_detection
    tensors, metadata = read_header(path)
    state_dict = {k: torch.empty(shape, dtype=_DTYPES.get(dtype, torch.float16), device="meta")
                  for k, (dtype, shape) in tensors.items()}
    prefix = comfy.model_detection.unet_prefix_from_state_dict(state_dict)
    file_prefix = ""
    if diffusion_model:  # as comfy.sd.load_diffusion_model_state_dict: bare keys, or a checkpoint's, prefix dropped
        bare = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        state_dict, prefix, file_prefix = (bare, "", prefix) if bare else (state_dict, "", "")
        config = comfy.model_detection.model_config_from_unet(state_dict, "")
    else:
        config = comfy.model_detection.model_config_from_unet(state_dict, prefix, metadata=metadata)
    if config is None:
        raise ValueError("the host's model detection does not recognise it"
                         + (" (diffusers-format files are not read)" if diffusion_model else ""))
    # the host's own class; its modules hold no memory
    model = config.get_model(SmallValuesFromFile(state_dict, path, file_prefix), prefix, device="meta")
    name = type(config).__name__
    return model.model_sampling, FAMILY_NAMES.get(name, name), tiles.native_px(config, model.model_type)


def schedule_and_tile_for(ckpt_name: str | None, unet_name: str | None = None):
    """(model_sampling, family, assumed, reason, the model's native tile side in px (SD1.5's 512 where assumed))
    for the checkpoint or diffusion model the canvas names (or none). `unet_name`
    (a file of the diffusion_models folder, as UNETLoader names it) is read where no `ckpt_name` is given."""
    folder, name = ("checkpoints", ckpt_name) if ckpt_name or not unet_name else ("diffusion_models", unet_name)
    if not name:
        return (reference_model_sampling(), REFERENCE, True,
                "no checkpoint or diffusion model named: the canvas cannot follow the model", 512)
    path = folder_paths.get_full_path(folder, name)
    if path is None:
        return reference_model_sampling(), REFERENCE, True, f"{name} is not in the {folder} folder", 512
    if not path.lower().endswith((".safetensors", ".sft")):
        return reference_model_sampling(), REFERENCE, True, f"{name} has no .safetensors header to read", 512
    try:
        stat = os.stat(path)
        key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns, folder)
        if key not in _by_file:
            _by_file[key] = model_sampling_from_header(path, diffusion_model=folder == "diffusion_models")
        model_sampling, family, native = _by_file[key]
    except Exception as error:  # a file the host could not load either: say so, quote SD1.5
        return reference_model_sampling(), REFERENCE, True, f"{name}: {error}", 512
    return model_sampling, family, False, f"read from the header of {name}", native


def answer(strength: float, steps: int, step_mode: str, ckpt_name: str | None = None,
           tiling: dict | None = None, unet_name: str | None = None) -> dict:
    """The plan; with `tiling` (tile_size, tile_overlap, tile_batch, width, height: px, sizes and Encode's
    size_mode optional) also `tiles`: what tiled denoising runs (nodes/tiles.plan). `unet_name`: the diffusion
    model a UNETLoader loads, read where no `ckpt_name` is given."""
    run, of = step_plan(strength, steps, step_mode)
    model_sampling, family, assumed, reason, native = schedule_and_tile_for(ckpt_name, unet_name)
    sigma = start_sigma(model_sampling, strength)
    if sigma <= 0.0:  # a strength so small that its noise level is 0: Denoise runs nothing (as at strength 0)
        run = 0
    plan = {"strength": strength, "steps": steps, "step_mode": step_mode, "run": run, "of": of,
            "sigma": sigma, "schedule": family, "assumed": assumed,
            "reason": reason, "ckpt_name": ckpt_name or None}
    if unet_name and not ckpt_name:
        plan["unet_name"] = unet_name
    if tiling is not None:
        plan["tiles"] = tiles.plan(tiling.get("width"), tiling.get("height"), tiling["tile_size"] or native,
                                   tiling["tile_overlap"], tiling["tile_batch"], tiling.get("size_mode", "pad"))
    return plan


def parse_tiling(query) -> dict | None:
    """The optional tiling query (tiling=on, tile_size, tile_overlap, tile_batch, width, height and Encode's
    size_mode), or None."""
    if query.get("tiling", "off") == "off":
        return None
    if query.get("tiling") != "on":
        raise ValueError(f"tiling must be one of {', '.join(tiles.TILING_MODES)}, got {query.get('tiling')!r}")
    try:
        values = {name: int(query.get(name, default)) for name, default in
                  (("tile_size", DEFAULT_TILING.tile_px), ("tile_overlap", DEFAULT_TILING.overlap_px),
                   ("tile_batch", DEFAULT_TILING.per_call), ("width", 0), ("height", 0))}
    except ValueError:
        raise ValueError("tile_size, tile_overlap, tile_batch, width and height must be integers (px)") from None
    if min(values.values()) < 0:
        raise ValueError("tile_size, tile_overlap, tile_batch, width and height must not be negative")
    size_mode = query.get("size_mode", "pad")
    if size_mode not in SIZE_MODES:
        raise ValueError(f"size_mode must be one of {', '.join(SIZE_MODES)}, got {size_mode!r}")
    return {**values, "size_mode": size_mode}


def parse(query) -> tuple[float, int, str, str | None]:
    """The query's (strength, steps, step_mode, ckpt_name), or ValueError naming what is wrong."""
    try:
        strength, steps = float(query.get("strength", "")), int(query.get("steps", ""))
    except ValueError:
        raise ValueError("give strength (0-1) and steps (an integer >= 1) as query parameters") from None
    step_mode = query.get("step_mode", "proportional")
    if not (math.isfinite(strength) and 0.0 <= strength <= 1.0):
        raise ValueError(f"strength must be between 0 and 1, got {strength}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if step_mode not in STEP_MODES:
        raise ValueError(f"step_mode must be one of {', '.join(STEP_MODES)}, got {step_mode!r}")
    return strength, steps, step_mode, query.get("ckpt_name") or None


async def step_plan_route(request: web.Request) -> web.Response:
    try:
        return web.json_response(answer(*parse(request.query), parse_tiling(request.query),
                                        unet_name=request.query.get("unet_name") or None))
    except ValueError as error:
        return web.json_response({"error": str(error)}, status=400)



# --- crop_to_mask: what SDEdit 1 · Encode will crop -------------------------------------------------------
# The canvas names the files Load Image / Load Image (as Mask) read; the host's own loader nodes read them
# here, and regions.regions_of_batch (Encode's rule) answers. The VAE factor is assumed LATENT_CELL_PX (SD-type
# VAEs); the answer says it (`cell_px`), so the canvas reads it from here.

CROP_ROUTE = "/sdedit/crop_plan"
_pictures = {}  # (kind, name, channel, mtime) -> (image, mask) from the host's loaders


def _load(kind: str, name: str, channel: str = "alpha"):
    import nodes as host_nodes
    if not folder_paths.exists_annotated_filepath(name):
        raise ValueError(f"{name} is not in the input folder")
    key = (kind, name, channel, os.stat(folder_paths.get_annotated_filepath(name)).st_mtime_ns)
    if key not in _pictures:
        if kind == "LoadImageMask":
            _pictures[key] = (None, host_nodes.LoadImageMask().load_image(name, channel)[0])
        else:
            _pictures[key] = host_nodes.LoadImage().load_image(name)[:2]
        while len(_pictures) > 8:
            _pictures.pop(next(iter(_pictures)))
    return _pictures[key]


def crop_answer(image: str, mask_from: str, mask_image: str | None, channel: str, size: int, padding: int,
                factor: float) -> dict:
    from .encode import crop_too_large
    from .masking import fit_mask
    from .regions import regions_of_batch
    pixels, mask = _load("LoadImage", image)
    if mask_from == "LoadImageMask":
        mask = _load("LoadImageMask", mask_image or "", channel)[1]
    height, width = pixels.shape[1:3]
    mask = fit_mask(mask, 1, height, width, "SDEdit 1 · Encode", "mask")
    (work_h, work_w), (found,) = regions_of_batch(mask, ["canvas"], factor, padding, size, LATENT_CELL_PX)
    if found:
        checks.refuse(crop_too_large([region for region, _ in found], factor, padding))  # Encode's own refusal
    return {"picture": [width, height], "work": [work_w, work_h], "cell_px": LATENT_CELL_PX,
            "crops": [[region.width, region.height] for region, _ in found]}


def parse_crop(query) -> tuple:
    try:
        size, padding, factor = int(query.get("crop_size", "")), int(query.get("crop_padding", "")), \
            float(query.get("crop_factor", ""))
    except ValueError:
        raise ValueError("give crop_size, crop_padding (integers) and crop_factor as query parameters") from None
    mask_from = query.get("mask_from", "LoadImage")
    if mask_from not in ("LoadImage", "LoadImageMask"):
        raise ValueError(f"mask_from must be LoadImage or LoadImageMask, got {mask_from!r}")
    if not (64 <= size <= 4096 and 0 <= padding and math.isfinite(factor) and factor >= 1.0):
        raise ValueError("crop_size must be 64-4096, crop_padding at least 0 and crop_factor at least 1")
    return (query.get("image", ""), mask_from, query.get("mask_image"), query.get("channel", "alpha"), size,
            padding, factor)


async def crop_plan_route(request: web.Request) -> web.Response:
    try:
        return web.json_response(crop_answer(*parse_crop(request.query)))
    except (ValueError, OSError) as error:  # OSError: a file Pillow cannot read
        return web.json_response({"error": str(error)}, status=400)


def register(server) -> None:
    """Adds the routes to the host's PromptServer (whose routes are mounted after custom nodes load)."""
    server.routes.get(ROUTE)(step_plan_route)
    server.routes.get(CROP_ROUTE)(crop_plan_route)
