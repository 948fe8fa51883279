"""SDEdit 1 · Encode: the VAE encodes the image to a latent (the paper's first step)."""

import dataclasses

import torch

from . import checks, pictures, regions
from .common import CATEGORY, io
from .fill import fill
from .vae_passes import MAX_PIXELS, encode_pixels
from .image_size import SIZE_MODES, frames_to_encode, mask_to_working, pad_frames, to_working, working_geometry
from .masked_content import MODES as CONTENT_MODES, latent_cells, take_masked
from .masking import feather, fit_mask

NODE = "SDEdit 1 · Encode"


def vae_factor(vae) -> int:
    return int(vae.spacial_compression_encode()) if getattr(vae, "crop_input", True) else 1


class SDEditEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SDEditEncode",
            display_name=NODE,
            category=CATEGORY,
            description="The first of the four SDEdit nodes: encodes the input image into the latent space "
                        "with the checkpoint's VAE. With a mask only the masked part is edited; the rest "
                        "comes back from the input pixel for pixel; masked_content sets what the masked part starts "
                        "from (fill: to remove an object).",
            inputs=[
                io.Image.Input("image", tooltip="The picture to start from (alpha is ignored)."),
                io.Vae.Input("vae", tooltip="The VAE of the checkpoint that will denoise the latent."),
                io.Mask.Input("mask", optional=True,
                              tooltip="Optional: where to edit (1 = edit, 0 = keep), e.g. Load Image's mask "
                                      "or the mask editor; a grey value m edits that part at m x strength. "
                                      "Resized to the image; one mask serves a batch. "
                                      "The kept part is returned bit for bit by SDEdit 4 · Decode."),
                io.Int.Input("mask_feather", default=0, min=0, max=256, optional=True,
                             tooltip="Pixels over which the edit fades in inside the mask's edge "
                                     "(0 = hard edge). The kept part never changes."),
                io.Combo.Input("size_mode", options=list(SIZE_MODES), default="pad", optional=True,
                               tooltip="Sides that are not a multiple of the VAE's factor (8): pad "
                                       "(edge-replicated, Decode returns the input's size), crop (centre crop, "
                                       "the output is smaller) or resize (Lanczos to the nearest multiple, "
                                       "Decode returns the input's size). Not used with crop_to_mask."),
                io.Boolean.Input("crop_to_mask", default=False, optional=True,
                                 tooltip="Edit only around the mask, at the model's own resolution: each masked "
                                         "region plus its context is cut out, scaled to crop_size and encoded; "
                                         "Decode scales the result back and stitches it into the picture, whose "
                                         "other pixels never go through the VAE. Separate regions are edited "
                                         "together in one batch. Needs a mask."),
                io.Int.Input("crop_size", default=512, min=64, max=4096, step=8, optional=True,
                             tooltip="crop_to_mask: the long side, in pixels, of each crop as the model sees "
                                     "it: 512 for SD1.5, 768 for SD2, 1024 for SDXL, SD3 and Flux."),
                io.Int.Input("crop_padding", default=32, min=0, max=4096, optional=True,
                             tooltip="crop_to_mask: pixels of context added on every side of each region's box "
                                     "(after crop_factor), so the model sees what surrounds the edit."),
                io.Float.Input("crop_factor", default=1.5, min=1.0, max=10.0, step=0.1, optional=True,
                               tooltip="crop_to_mask: each region's box is first scaled by this about its centre "
                                       "(1 = the mask's own box; 3 = three times as wide and high)."),
                io.Combo.Input("masked_content", options=list(CONTENT_MODES), default="original",
                               optional=True,
                               tooltip="What the masked part starts from (A1111's masked content). original: the "
                                       "input (change how it looks). fill: the masked pixels filled from around "
                                       "the mask, to remove an object (strength ~0.75). latent noise / latent "
                                       "nothing: random / zero latent (applied by Add Noise). Only the mask's "
                                       "latent cells change; the kept part stays the input's."),
            ],
            outputs=[
                io.Latent.Output("latent", display_name="latent",
                                 tooltip="The image as a clean latent: connect it to SDEdit 2 · Add Noise."),
            ],
        )

    @classmethod
    def validate_inputs(cls, size_mode="pad", masked_content="original") -> bool | str:
        return checks.first_problem(checks.choice(NODE, "size_mode", size_mode, SIZE_MODES, "the size modes"),
                                    check_masked_content(masked_content))

    @classmethod
    def execute(cls, image, vae, mask=None, mask_feather=0, size_mode="pad", crop_to_mask=False, crop_size=512,
                crop_padding=32, crop_factor=1.5, masked_content="original") -> io.NodeOutput:
        checks.refuse(checks.image(NODE, "image", image), check_masked_content(masked_content))
        pixels = image[:, :, :, :3]
        edit_mask = None
        if mask is not None:
            edit_mask = feather(fit_mask(mask, pixels.shape[0], pixels.shape[1], pixels.shape[2], NODE, "mask"),
                                mask_feather)
        elif masked_content != "original":
            raise ValueError(f"{NODE}: input 'masked_content' is {masked_content!r} but input 'mask' is not "
                             "connected, so there is no masked part to start from it. Fix: connect a MASK (Load "
                             "Image's mask, the mask editor), or set masked_content to 'original'.")
        if crop_to_mask:
            latent = encode_regions(vae, pixels, edit_mask, crop_size, crop_padding, crop_factor, masked_content)
            return io.NodeOutput(latent)
        checks.refuse(crop_leaves_nothing(pixels.shape[1], pixels.shape[2], vae_factor(vae), size_mode))
        g = working_geometry(pixels.shape[1], pixels.shape[2], vae_factor(vae), size_mode)
        # A video VAE keeps only some frame counts: pad in time (Decode trims), so N frames come back as N.
        frames = frames_to_encode(pixels.shape[0], vae)
        samples = encode_pixels(vae, pad_frames(to_working(pixels, g), frames))
        out = {}
        working_mask = None
        if edit_mask is not None:
            working_mask = mask_to_working(edit_mask, g).unsqueeze(1)
            if frames != pixels.shape[0] and working_mask.shape[0] > 1:
                working_mask = pad_frames(working_mask, frames)
            out["noise_mask"] = working_mask  # the host's own key: its samplers mask by it
            if masked_content == "fill":
                filled = encode_pixels(vae, pad_frames(to_working(fill(pixels, edit_mask), g), frames))
                samples = take_masked(samples, filled, latent_cells(working_mask, samples.shape))
        records = with_masked_content(pictures.from_encode(samples, pixels, edit_mask, working_mask, g),
                                      masked_content)
        return io.NodeOutput(pictures.attach(out, samples, records))


def crop_leaves_nothing(height: int, width: int, factor: int, size_mode: str) -> str | None:
    """size_mode crop cuts each side down to a multiple of the VAE's factor: a side shorter than it has none."""
    if size_mode != "crop" or min(height, width) >= factor:
        return None
    return (f"{NODE}: input 'size_mode' is crop, which cuts each side of the image down to a multiple of the VAE's "
            f"{factor} px, and input 'image' is {width}x{height} px, so nothing of it would be left. Fix: set "
            "size_mode to pad or resize.")


def crop_too_large(crops: list, factor: float, padding: int) -> str | None:
    """A crop is cut at its full size before it is scaled to the working size: above the VAE passes' limit that is
    gigabytes, most of it the picture's edge repeated."""
    largest = max(crops, key=lambda r: r.height * r.width)
    if largest.height * largest.width <= MAX_PIXELS:
        return None
    return (f"{NODE}: inputs 'crop_factor' ({factor:g}) and 'crop_padding' ({padding} px) make a crop of "
            f"{largest.width}x{largest.height} px around the mask, above the limit of {MAX_PIXELS / 1e6:.0f} Mpx "
            "(8192x8192); beyond the picture it would only repeat its edge. Fix: lower crop_factor or crop_padding.")


def check_masked_content(value) -> str | None:
    return checks.choice(NODE, "masked_content", value, CONTENT_MODES, "the masked content modes")


def with_masked_content(records: list, mode: str) -> list:
    """Encode's records with the mode Add Noise is to apply ("fill" is applied here already, in the latent)."""
    return records if mode == "original" else [dataclasses.replace(r, masked_content=mode) for r in records]


def encode_regions(vae, pixels: torch.Tensor, edit_mask, size: int, padding: int, factor: float,
                   masked_content: str = "original") -> dict:
    """crop_to_mask: one latent row per region of each picture (nodes/regions.py), all of one working size.
    "fill" fills each whole picture (so a crop's fill grows from the picture around it, not the crop's edge)."""
    if edit_mask is None:
        raise ValueError(f"{NODE}: crop_to_mask is on but input 'mask' is not connected, so there is no region to "
                         "crop. Fix: connect a MASK (Load Image's mask, the mask editor), or turn crop_to_mask off.")
    if getattr(vae, "latent_dim", 2) != 2:
        raise ValueError(f"{NODE}: crop_to_mask works on pictures, and input 'vae' is a video VAE. Fix: turn "
                         "crop_to_mask off for video.")
    masks = edit_mask.expand(pixels.shape[0], *edit_mask.shape[1:])
    sources = [f"{i}:{pictures.fingerprint(pixels[i])}" for i in range(pixels.shape[0])]
    work, found = regions.regions_of_batch(masks, sources, factor, padding, size, vae_factor(vae))
    empty = [i + 1 for i, crops in enumerate(found) if not crops]
    if empty:
        which = f"picture {empty[0]}" if len(empty) == 1 else f"pictures {', '.join(map(str, empty[:8]))}"
        raise ValueError(f"{NODE}: input 'mask' is empty for {which} of {pixels.shape[0]} (no pixel above 0), so "
                         "crop_to_mask has nothing to crop. Fix: paint the part to edit, or turn crop_to_mask off "
                         "(an empty mask then keeps the whole picture).")
    checks.refuse(crop_too_large([r for crops in found for r, _ in crops], factor, padding))
    filled = fill(pixels, masks) if masked_content == "fill" else None
    records, crops, filled_crops, working_masks = [], [], [], []
    for i, picture_regions in enumerate(found):
        for region, own in picture_regions:
            g = region.geometry(*work)
            crop, crop_mask = regions.cut(pixels[i:i + 1], region), regions.cut(own[None], region)
            working_mask = mask_to_working(crop_mask, g).unsqueeze(1)
            crops.append(to_working(crop, g))
            if filled is not None:
                filled_crops.append(to_working(regions.cut(filled[i:i + 1], region), g))
            working_masks.append(working_mask)
            records.append(pictures.Picture(row="", clean=None, pixels=crop, mask=crop_mask, working_mask=working_mask,
                                            geometry=g, region=region, whole=pixels[i:i + 1]))
    samples = encode_pixels(vae, torch.cat(crops))
    if filled is not None:
        cells = torch.cat([latent_cells(m, samples[:1].shape) for m in working_masks])
        samples = take_masked(samples, encode_pixels(vae, torch.cat(filled_crops)), cells)
    records = with_masked_content([dataclasses.replace(r, clean=samples[j]) for j, r in enumerate(records)],
                                  masked_content)
    return pictures.attach({"noise_mask": torch.cat(working_masks)}, samples, records)
