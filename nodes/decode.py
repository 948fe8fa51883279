"""SDEdit 4 · Decode: the VAE decodes the final latent to an image (the paper's last step)."""
import comfy.utils
import torch

from . import checks, colour, pictures, regions
from .common import CATEGORY, io
from .image_size import from_working, mask_in_output_frame, to_output_frame
from .masking import composite
from .vae_passes import decode_latent

NODE = "SDEdit 4 · Decode"


def edit_mask(record, host_mask, row: int):
    """The edit mask over the picture Decode returns: a host noise_mask set since Encode, else Encode's own."""
    g = record.geometry
    if host_mask is not None:
        if record.region is not None:
            raise ValueError(f"{NODE}: input 'latent' holds crops made by SDEdit 1 · Encode's crop_to_mask and a "
                             "noise mask set since Encode (Set Latent Noise Mask, ...), which is drawn over the "
                             "whole picture, not the crops. Fix: give the mask to Encode instead.")
        frames = record.pixels.shape[0]
        rows = host_mask.reshape(-1, 1, *host_mask.shape[-2:])
        if rows.shape[0] > 1:
            rows = comfy.utils.repeat_to_batch_size(rows, (row + 1) * frames)[row * frames:(row + 1) * frames]
        return mask_in_output_frame(rows, g, working=False)
    return None if record.mask is None else to_output_frame(record.mask, g)


def picture_out(frames: torch.Tensor, record, host_mask, row: int, color_anchor: float = 0.0) -> torch.Tensor:
    """One latent row's decoded frames at the input's size, the keep region put back from its own pixels and,
    with `color_anchor`, the edited part's colours matched to the input's (nodes/colour.py)."""
    g = record.geometry
    frames = from_working(frames, g)
    if record.pixels is not None and frames.shape[0] > record.pixels.shape[0]:
        frames = frames[:record.pixels.shape[0]]  # the frames Encode added in time for the video VAE
    mask = edit_mask(record, host_mask, row) if record.pixels is not None else None
    if mask is None and (color_anchor <= 0.0 or record.pixels is None):
        return frames
    if frames.shape[0] != record.pixels.shape[0]:
        what = ("the kept region cannot be put back in every frame" if mask is not None
                else "input 'color_anchor' cannot match each frame to its own input")
        raise ValueError(f"{NODE}: input 'latent' decodes to {frames.shape[0]} frames but its input had "
                         f"{record.pixels.shape[0]} (the VAE keeps only some frame counts, e.g. 1 + 4k for Wan), so "
                         f"{what}. Fix: give SDEdit 1 · Encode a frame count the VAE keeps (e.g. 5 or 9 for Wan), "
                         "or remove the mask / set color_anchor to 0.")
    original = to_output_frame(record.pixels, g).to(frames.device, frames.dtype)
    if mask is None:
        return colour.anchor_colour(original, frames, None, color_anchor)
    mask = mask.to(frames.device)
    frames = colour.anchor_colour(original, frames, (mask > 0).expand(frames.shape[:3]), color_anchor)
    return composite(original, frames, mask)


READER = pictures.Reader(
    NODE, "latent", ("geometry",), keep_region="its kept region cannot be put back from its own input",
    fix="between SDEdit 3 · Denoise and Decode use batch nodes only (Repeat Latent Batch, Latent From Batch, "
        "Latent Batch, Rebatch Latents), or decode with the host's VAE Decode.")


class SDEditDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SDEditDecode",
            display_name=NODE,
            category=CATEGORY,
            description="The last of the four SDEdit nodes: decodes the denoised latent back into an image "
                        "with the checkpoint's VAE, at the input's size (see Encode's size_mode). Where the "
                        "latent carries a mask, the kept part is the input image, pixel for pixel; color_anchor "
                        "keeps the edited part's colours at the input's.",
            inputs=[
                io.Latent.Input("latent", tooltip="The denoised latent from SDEdit 3 · Denoise."),
                io.Vae.Input("vae", tooltip="The VAE that encoded the image (the checkpoint's VAE)."),
                io.Float.Input("color_anchor", default=0.0, min=0.0, max=1.0, step=0.05, optional=True,
                               tooltip="Keeps the edited part's colours put: 1 matches their mean and spread in "
                                       "Lab (a perceptual colour space) to the input's over the same part, so the "
                                       "edit does not drift against what is kept; 0 (default) leaves the decoded "
                                       "colours as they are. It also undoes a colour change the prompt asks for."),
            ],
            outputs=[
                io.Image.Output("image", display_name="image",
                                tooltip="The edited picture; with a mask, the unmasked part is the input's pixels."),
            ],
            hidden=[io.Hidden.prompt, io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, latent, vae, color_anchor=0.0) -> io.NodeOutput:
        checks.refuse(checks.vae_fits_latent(NODE, "latent", latent["samples"], vae))
        samples = latent["samples"]
        images = decode_latent(vae, samples)
        if images.ndim == 5:  # video VAEs give (batch, frames, h, w, c): one image per frame
            images = images.reshape(-1, *images.shape[-3:])
        records = pictures.own_records(READER, latent, cls.hidden)
        size = (images.shape[1], images.shape[2])
        fits = [r is not None and r.geometry is not None and size == (r.geometry.work_height, r.geometry.work_width)
                for r in records]
        if color_anchor > 0.0 and not all(fits):
            raise ValueError(f"{NODE}: input 'color_anchor' needs each picture's input, but input 'latent' holds "
                             "pictures that do not come from SDEdit 1 · Encode (or were resized since). Fix: set "
                             "color_anchor to 0, or encode the picture with SDEdit 1 · Encode.")
        if not any(fits):
            return io.NodeOutput(images)  # not from Encode, or resized since: nothing to undo
        host_mask = pictures.host_mask(latent, records)
        per_row = images.shape[0] // len(records)
        out, whole = [], None  # whole: [slot in out, source, regions stitched] of the picture being stitched
        for i, record in enumerate(records):
            frames = images[i * per_row:(i + 1) * per_row]
            piece = picture_out(frames, record, host_mask, i, color_anchor) if fits[i] else frames
            region = record.region if fits[i] else None
            if region is None:
                out.append(piece)
                continue
            # A picture's crops follow each other; a repeat (Repeat Latent Batch) starts the picture again.
            if whole is None or whole[1] != region.source or region.index in whole[2]:
                whole = [len(out), region.source, set()]
                out.append(record.whole.to(piece.device, piece.dtype))
            out[whole[0]] = regions.stitch(out[whole[0]], piece, record.mask, region)
            whole[2].add(region.index)
        if len({tuple(o.shape[1:]) for o in out}) > 1:
            raise ValueError(f"{NODE}: input 'latent' holds pictures of different sizes "
                             f"({', '.join(sorted({f'{o.shape[2]}x{o.shape[1]}' for o in out}))}), which cannot "
                             "be one IMAGE batch. Fix: decode them with separate Decode nodes (Latent From Batch).")
        return io.NodeOutput(torch.cat(out))
