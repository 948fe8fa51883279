"""The pack's geometry space as Hypothesis strategies, and one case run through the four nodes on the host.

A case is a picture size, a batch, masks (empty, full, one pixel, rectangles touching the borders or not, grey
levels, one for the batch or one per picture, drawn at another size or not), mask_feather, size_mode,
crop_to_mask with crop_size / crop_padding / crop_factor, Repeat Latent Batch, tiling with tile_size /
tile_overlap / tile_batch, strength and steps. `run` takes it through Encode -> (Repeat Latent Batch) ->
Add Noise -> Denoise -> Decode on the host's own runtime, with two cheap stand-ins that are still the host's
classes: `tiny_vae` (comfy.sd.VAE around a small random-weight AutoencoderKL, the SD VAE's factor 8) and
`gaussian_model` (the test checkpoint's ModelPatcher whose model is the closed-form denoiser of Gaussian
data, through the host's model_function_wrapper). `violations` says what a run broke of the documented rule:
either a refusal that names the node, the input and the fix, or an output of the documented size whose pixels
outside the mask are the input's bit for bit, from a latent of the documented size.
Used by tests/test_geometry_properties.py (a bounded run) and bench/geometry.py (the long run).
"""
import dataclasses
import re

import torch
from hypothesis import strategies as st

CELL = 8  # the VAE's factor
MU, S = 0.5, 0.8  # the Gaussian data the stand-in denoiser is ideal for
# Pixels the VAE sees per case at most: the picture itself without crop_to_mask (its crops with it are
# crop_size^2 each), so that hundreds of cases run in a minute on two CPU cores.
WHOLE_PICTURE_PIXELS = 24_000
CROP_PICTURE_PIXELS = 1_000_000  # crop_to_mask: the picture never goes through the VAE
CROP_BOX_SIDE = 2_500  # crop_to_mask: the longest box (mask box x crop_factor + 2 crop_padding) drawn
NODE_NAMES = ("SDEdit 1 · Encode", "SDEdit 2 · Add Noise", "SDEdit 3 · Denoise", "SDEdit 4 · Decode")


def tiny_vae(seed: int = 0):
    """The host's comfy.sd.VAE around an AutoencoderKL of 64 channels and no res blocks per level (factor 8,
    random weights drawn from `seed`; 64 channels: two per norm group, which an 8-px picture's one-cell latent
    needs): tens of ms for a 64-px picture."""
    import comfy.sd
    from comfy.ldm.models.autoencoder import AutoencoderKL
    ddconfig = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 64,
                "ch_mult": [1, 1, 1, 1], "num_res_blocks": 0, "attn_resolutions": [], "dropout": 0.0}
    with torch.device("meta"):
        shapes = AutoencoderKL(ddconfig=ddconfig, embed_dim=4).state_dict()
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, meta in sorted(shapes.items()):
        if meta.ndim > 1:  # conv weights: unit-scale activations
            state[key] = torch.randn(meta.shape, generator=generator) * meta[0].numel() ** -0.5
        else:  # biases 0; the norms' weights 1
            state[key] = torch.ones(meta.shape) if "norm" in key and key.endswith("weight") else torch.zeros(meta.shape)
    return comfy.sd.VAE(sd=state, config={"params": {"ddconfig": ddconfig, "embed_dim": 4}})


def gaussian_model(model, calls: list | None = None):
    """A clone of `model` whose denoiser is the ideal one for N(MU, S^2) data (tests/test_sdedit_gaussian.py);
    with `calls`, each call's batch size is appended to it (tiling's model calls)."""
    patched = model.clone()

    def ideal(apply_model, args):
        x, sigma = args["input"], args["timestep"].view(-1, *[1] * (args["input"].ndim - 1))
        if calls is not None:
            calls.append(x.shape[0])
        return MU + S ** 2 / (S ** 2 + sigma ** 2) * (x - MU)
    patched.set_model_unet_function_wrapper(ideal)
    return patched


@dataclasses.dataclass(frozen=True)
class Rect:
    top: int
    left: int
    height: int
    width: int
    value: float


@dataclasses.dataclass(frozen=True)
class Case:
    height: int
    width: int
    batch: int = 1
    masks: tuple | None = None  # None: no mask; else one tuple of Rects per mask (1 or `batch` masks)
    mask_size: tuple | None = None  # (h, w) the masks are drawn at; None: the picture's
    mask_feather: int = 0
    size_mode: str = "pad"
    crop_to_mask: bool = False
    crop_size: int = 512
    crop_padding: int = 32
    crop_factor: float = 1.5
    repeats: int = 1
    tiling: str = "off"
    tile_size: int = 0
    tile_overlap: int = 128
    tile_batch: int = 0
    strength: float = 0.6
    steps: int = 2
    seed: int = 0


def mask_tensor(case: Case) -> torch.Tensor | None:
    """The MASK the case gives Encode: (masks, h, w), each the largest of its rectangles' values."""
    if case.masks is None:
        return None
    h, w = case.mask_size or (case.height, case.width)
    out = torch.zeros(len(case.masks), h, w)
    for i, rects in enumerate(case.masks):
        for r in rects:
            part = out[i, r.top:r.top + r.height, r.left:r.left + r.width]
            out[i, r.top:r.top + r.height, r.left:r.left + r.width] = part.clamp(min=r.value)
    return out


def picture(case: Case) -> torch.Tensor:
    """A deterministic IMAGE (batch, h, w, 3) in [0, 1], different for each picture of the batch."""
    y = torch.linspace(0, 1, case.height).view(case.height, 1, 1)
    x = torch.linspace(0, 1, case.width).view(1, case.width, 1)
    k = torch.arange(case.batch, dtype=torch.float32).view(-1, 1, 1, 1)
    c = torch.tensor([1.0, 2.0, 3.0]).view(1, 1, 3)
    return ((x * c + y * (k + 1) * 3 + k / 5 + (x * y * 7 * c)) % 1.0).float()


# --- strategies -----------------------------------------------------------------------------------------

def side(limit: int):
    """1 px to `limit`, weighted towards small, odd and exact multiples of the VAE's factor."""
    return st.one_of(st.integers(1, 24), st.integers(1, limit), st.integers(1, max(1, limit // CELL)).map(
        lambda k: k * CELL), st.sampled_from([1, 7, 8, 9, 63, 64, 65, 112, 491, 512]).filter(lambda v: v <= limit))


@st.composite
def rects(draw, height: int, width: int):
    """One mask's rectangles: empty, full, one pixel, or 1-3 boxes (touching borders or not), grey or not."""
    kind = draw(st.sampled_from(["boxes", "boxes", "boxes", "empty", "full", "pixel"]))
    grey = st.one_of(st.just(1.0), st.sampled_from([0.25, 0.5]), st.floats(1 / 64, 1.0, width=32))
    if kind == "empty":
        return ()
    if kind == "full":
        return (Rect(0, 0, height, width, draw(grey)),)
    if kind == "pixel":
        return (Rect(draw(st.integers(0, height - 1)), draw(st.integers(0, width - 1)), 1, 1, draw(grey)),)
    out = []
    for _ in range(draw(st.integers(1, 3))):
        top = draw(st.one_of(st.just(0), st.integers(0, height - 1)))
        left = draw(st.one_of(st.just(0), st.integers(0, width - 1)))
        bottom = draw(st.one_of(st.just(height), st.integers(top + 1, height)))
        right = draw(st.one_of(st.just(width), st.integers(left + 1, width)))
        out.append(Rect(top, left, bottom - top, right - left, draw(grey)))
    return tuple(out)


@st.composite
def cases(draw, crop_to_mask=None):
    """A drawn Case; `crop_to_mask` True/False fixes that setting."""
    crop = draw(st.booleans()) if crop_to_mask is None else crop_to_mask
    budget = CROP_PICTURE_PIXELS if crop else WHOLE_PICTURE_PIXELS
    batch = draw(st.integers(1, 2 if crop else 3))
    height = draw(side(2000).filter(lambda v: v <= budget))
    width = draw(side(min(2000 if crop else 3000, budget // (height * (1 if crop else batch)))))
    masks, mask_size = None, None
    if draw(st.integers(0, 4)) > 0:
        if draw(st.integers(0, 5)) == 0:  # a mask at another size, resized by Encode
            mask_size = (draw(st.integers(1, 96)), draw(st.integers(1, 96)))
        mh, mw = mask_size or (height, width)
        masks = tuple(draw(rects(mh, mw)) for _ in range(draw(st.sampled_from([1, batch]))))
    tiling = draw(st.sampled_from(["off", "off", "on"]))
    factor = draw(st.one_of(st.sampled_from([1.0, 1.5, 10.0]), st.floats(1.0, 10.0)))
    longest = max(height, width) * factor
    padding = draw(st.one_of(st.sampled_from([0, 32]), st.integers(0, 256), st.integers(0, 4096)).filter(
        lambda p: not crop or longest + 2 * p <= CROP_BOX_SIDE or p == 0))
    if crop and longest > CROP_BOX_SIDE:
        factor = 1.0  # the box is at most the picture's
    return Case(
        height=height, width=width, batch=batch, masks=masks, mask_size=mask_size,
        mask_feather=draw(st.one_of(st.just(0), st.integers(0, 16))),
        size_mode=draw(st.sampled_from(["pad", "crop", "resize"])),
        crop_to_mask=crop,
        crop_size=draw(st.one_of(st.integers(8, 16).map(lambda k: k * CELL), st.sampled_from([64, 128]))),
        crop_padding=padding,
        crop_factor=factor,
        repeats=draw(st.sampled_from([1, 1, 1, 2])),
        tiling=tiling,
        tile_size=draw(st.one_of(st.just(0), st.integers(0, 32).map(lambda k: k * CELL), st.integers(0, 600))),
        tile_overlap=draw(st.one_of(st.sampled_from([0, 128]), st.integers(0, 32).map(lambda k: k * CELL),
                                    st.integers(0, 600))),
        tile_batch=draw(st.integers(0, 4)),
        strength=draw(st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0))),
        steps=draw(st.integers(1, 3)),
        seed=draw(st.integers(0, 2 ** 32)),
    )


# --- running a case and what it must satisfy ------------------------------------------------------------

@dataclasses.dataclass
class Outcome:
    image: torch.Tensor | None = None  # Decode's output
    latent: dict | None = None         # Encode's output
    noisy: dict | None = None          # Add Noise's output
    refusal: str | None = None         # a ValueError's message
    error: BaseException | None = None  # anything else raised
    calls: list = dataclasses.field(default_factory=list)  # the denoiser's batch size at each model call


def run(case: Case, model, cond, vae) -> Outcome:
    """The case through Encode -> (Repeat Latent Batch) -> Add Noise -> Denoise -> Decode."""
    import nodes as host_nodes
    from sdedit_img2img.nodes.add_noise import SDEditAddNoise
    from sdedit_img2img.nodes.decode import SDEditDecode
    from sdedit_img2img.nodes.denoise import SDEditDenoise
    from sdedit_img2img.nodes.encode import SDEditEncode
    out = Outcome()
    denoiser = gaussian_model(model, out.calls)
    try:
        with torch.inference_mode():
            out.latent = SDEditEncode.execute(
                picture(case), vae, mask=mask_tensor(case), mask_feather=case.mask_feather, size_mode=case.size_mode,
                crop_to_mask=case.crop_to_mask, crop_size=case.crop_size, crop_padding=case.crop_padding,
                crop_factor=case.crop_factor)[0]
            latent = out.latent
            if case.repeats > 1:
                latent = host_nodes.RepeatLatentBatch().repeat(latent, case.repeats)[0]
            out.noisy = SDEditAddNoise.execute(denoiser, latent, case.strength, case.seed)[0]
            denoised = SDEditDenoise.execute(denoiser, cond, cond, out.noisy, case.steps, 1.0, "euler", "normal",
                                             "proportional", case.tiling, case.tile_size, case.tile_overlap,
                                             case.tile_batch)[0]
            out.image = SDEditDecode.execute(denoised, vae)[0]
    except ValueError as refusal:
        out.refusal = str(refusal)
    except Exception as error:  # noqa: BLE001  (anything else is what the property forbids)
        out.error = error
    return out


def fitted_masks(case: Case) -> torch.Tensor | None:
    """The masks over the pictures as documented: resized (bilinear) to the picture, one per picture."""
    from sdedit_img2img.nodes.masking import fit_mask
    mask = mask_tensor(case)
    if mask is None:
        return None
    return fit_mask(mask, case.batch, case.height, case.width, "", "mask").expand(case.batch, -1, -1)


def expected_refusal(case: Case) -> str | None:
    """The input a documented refusal names for this case, else None (the case must run)."""
    masks = fitted_masks(case)
    if case.crop_to_mask and (masks is None or any(not bool((m > 0).any()) for m in masks)):
        return "mask"
    if not case.crop_to_mask and case.size_mode == "crop" and min(case.height, case.width) < CELL:
        return "size_mode"
    if case.tiling == "on":
        tile = (case.tile_size or 512) // CELL
        if tile < 1:
            return "tile_size"
        if case.tile_overlap // CELL >= tile:
            return "tile_overlap"
    return None


def output_size(case: Case) -> tuple[int, int]:
    """docs/editing.md: the input's size, except size_mode crop (centre crop to multiples of 8); crop_to_mask:
    always the input's size."""
    if case.size_mode != "crop" or case.crop_to_mask:
        return case.height, case.width
    return case.height // CELL * CELL, case.width // CELL * CELL


def latent_cells(case: Case) -> tuple[int, int]:
    """The latent's (h, w) in cells without crop_to_mask: pad rounds up, crop down, resize to the nearest."""
    def one(s):
        if case.size_mode == "pad":
            return -(-s // CELL)
        if case.size_mode == "crop":
            return s // CELL
        return max(round(s / CELL), 1)
    return one(case.height), one(case.width)


def violations(case: Case, out: Outcome) -> list[str]:
    """What the run broke of the documented rule ([] where it held)."""
    refuse = expected_refusal(case)
    if out.error is not None:
        return [f"raw error: {type(out.error).__name__}: {out.error}"]
    if out.refusal is not None:
        problems = []
        if not re.match("|".join(re.escape(n) for n in NODE_NAMES), out.refusal) or "Fix:" not in out.refusal \
                or "input '" not in out.refusal:
            problems.append(f"a refusal that does not name the node, the input and the fix: {out.refusal}")
        if refuse is None:
            problems.append(f"refused a case the docs say runs: {out.refusal}")
        elif f"input '{refuse}'" not in out.refusal:
            problems.append(f"refused naming another input than '{refuse}': {out.refusal}")
        return problems
    if refuse is not None:
        return [f"ran a case the docs say is refused (input '{refuse}')"]
    problems = []
    samples = out.latent["samples"]
    if case.crop_to_mask:
        long_side = case.crop_size // CELL
        if samples.shape[0] < case.batch or max(samples.shape[-2:]) != long_side or min(samples.shape[-2:]) < 1:
            problems.append(f"latent {tuple(samples.shape)}: not one row per region of long side {long_side} cells")
    elif tuple(samples.shape) != (case.batch, 4, *latent_cells(case)):
        problems.append(f"latent {tuple(samples.shape)}, documented {(case.batch, 4, *latent_cells(case))}")
    image = out.image
    size = output_size(case)
    if tuple(image.shape) != (case.batch * case.repeats, *size, 3):
        return problems + [f"output {tuple(image.shape)}, documented {(case.batch * case.repeats, *size, 3)}"]
    if not bool(torch.isfinite(image).all()) or float(image.min()) < 0.0 or float(image.max()) > 1.0:
        problems.append("output pixels outside [0, 1]")
    masks = fitted_masks(case)
    if masks is not None:
        pictures = picture(case)
        top, left = (case.height - size[0]) // 2, (case.width - size[1]) // 2  # crop mode's centre crop
        for i in range(image.shape[0]):
            src = pictures[i % case.batch, top:top + size[0], left:left + size[1]]
            keep = masks[i % case.batch, top:top + size[0], left:left + size[1]] == 0
            changed = int((image[i][keep] != src[keep]).any(-1).sum())
            if changed:
                problems.append(f"picture {i + 1}: {changed} kept pixels (mask 0) differ from the input")
    return problems
