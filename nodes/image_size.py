"""Any image size for a VAE that works in multiples of `factor` pixels: the geometry of padding,
cropping or resizing an image to its working size, and of undoing it after decoding. Pure maths."""
from dataclasses import dataclass

import comfy.utils
import torch
import torch.nn.functional as F

SIZE_MODES = ("pad", "crop", "resize")
LATENT_CELL_PX = 8  # pixels per latent cell of the image models this pack edits (SD1.x, SD2.x, SDXL, SD3, Flux)


@dataclass(frozen=True)
class Geometry:
    mode: str
    height: int       # the input image
    width: int
    work_height: int  # what the VAE sees
    work_width: int
    top: int          # pad: rows added above; crop: rows cut above
    left: int

    @property
    def identity(self) -> bool:
        return (self.height, self.width) == (self.work_height, self.work_width)

    @property
    def out_size(self) -> tuple[int, int]:
        """What Decode returns: the input's size, except in crop mode (the cropped size)."""
        if self.mode == "crop":
            return self.work_height, self.work_width
        return self.height, self.width


def working_geometry(height: int, width: int, factor: int, mode: str) -> Geometry:
    if mode not in SIZE_MODES:
        raise ValueError(f"size_mode must be one of {SIZE_MODES}, got {mode!r}")
    if mode == "pad":  # up to the next multiple, the extra split around the picture
        wh, ww = -(-height // factor) * factor, -(-width // factor) * factor
        return Geometry(mode, height, width, wh, ww, (wh - height) // 2, (ww - width) // 2)
    if mode == "crop":  # the host VAE's own centre crop (comfy.sd.VAE.vae_encode_crop_pixels)
        wh, ww = min(max(height // factor, 1) * factor, height), min(max(width // factor, 1) * factor, width)
        return Geometry(mode, height, width, wh, ww, (height - wh) // 2, (width - ww) // 2)
    wh = max(round(height / factor), 1) * factor
    ww = max(round(width / factor), 1) * factor
    return Geometry(mode, height, width, wh, ww, 0, 0)


def _pad_amounts(g: Geometry) -> tuple[int, int, int, int]:
    return g.left, g.work_width - g.width - g.left, g.top, g.work_height - g.height - g.top


def to_working(images: torch.Tensor, g: Geometry) -> torch.Tensor:
    """IMAGE (b, h, w, c) -> its working size. Crop mode returns the images untouched: the host VAE
    crops them itself, exactly as it always has."""
    if g.identity or g.mode == "crop":
        return images
    nchw = images.movedim(-1, 1)
    if g.mode == "pad":
        out = F.pad(nchw, _pad_amounts(g), mode="replicate")
    else:
        out = comfy.utils.lanczos(nchw, g.work_width, g.work_height)
    return out.movedim(1, -1)


def mask_to_working(mask: torch.Tensor, g: Geometry) -> torch.Tensor:
    """MASK (b, h, w) of the input's size -> the working frame (what the VAE saw)."""
    if g.identity:
        return mask
    if g.mode == "crop":
        return mask[:, g.top:g.top + g.work_height, g.left:g.left + g.work_width]
    m = mask.unsqueeze(1)
    if g.mode == "pad":
        m = F.pad(m, _pad_amounts(g), mode="replicate")
    else:
        m = F.interpolate(m, size=(g.work_height, g.work_width), mode="bilinear")
    return m.squeeze(1)


def from_working(images: torch.Tensor, g: Geometry) -> torch.Tensor:
    """Decoded IMAGE (b, work_h, work_w, c) -> the output size (`g.out_size`)."""
    if g.identity or g.mode == "crop":
        return images
    if g.mode == "pad":
        return images[:, g.top:g.top + g.height, g.left:g.left + g.width]
    return comfy.utils.lanczos(images.movedim(-1, 1), g.width, g.height).movedim(1, -1)


def to_output_frame(images_or_mask: torch.Tensor, g: Geometry) -> torch.Tensor:
    """Input-sized pixels or mask (b, h, w[, c]) -> the frame Decode returns (crop mode cuts them)."""
    if g.mode != "crop" or g.identity:
        return images_or_mask
    return images_or_mask[:, g.top:g.top + g.work_height, g.left:g.left + g.work_width]


def mask_in_working_frame(noise_mask: torch.Tensor, g: "Geometry | None") -> torch.Tensor:
    """A host `noise_mask` (b, 1, h, w) drawn at the input image's size, moved into the working frame
    the latent was encoded in (the host would stretch it over the padding). Other sizes are left to
    the host, which resizes a noise_mask to the latent."""
    if g is None or g.identity or tuple(noise_mask.shape[-2:]) != (g.height, g.width):
        return noise_mask
    return mask_to_working(noise_mask.reshape(-1, g.height, g.width), g).unsqueeze(1)


def mask_in_output_frame(noise_mask: torch.Tensor, g: Geometry, working: bool) -> torch.Tensor:
    """A noise_mask (b, 1, h, w) -> (b, out_h, out_w) over what Decode returns. `working`: the mask is in
    the working frame (made by Encode or moved there), else it is at the input's size."""
    m = noise_mask.reshape(-1, *noise_mask.shape[-2:]).float()
    if not working and tuple(m.shape[-2:]) == (g.height, g.width):
        return to_output_frame(m, g)
    if tuple(m.shape[-2:]) != (g.work_height, g.work_width):
        m = F.interpolate(m.unsqueeze(1), size=(g.work_height, g.work_width), mode="bilinear").squeeze(1)
    if g.mode == "pad" and not g.identity:
        return m[:, g.top:g.top + g.height, g.left:g.left + g.width]
    if g.mode == "resize" and not g.identity:
        return F.interpolate(m.unsqueeze(1), size=(g.height, g.width), mode="bilinear").squeeze(1)
    return m


def frames_to_encode(frames: int, vae) -> int:
    """The fewest frames >= `frames` that `vae` encodes and decodes back as many of (1 + 4k for Wan and
    Hunyuan, 1 + 8k for LTXV): a picture VAE keeps any count."""
    down, up = getattr(vae, "downscale_ratio", None), getattr(vae, "upscale_ratio", None)
    if getattr(vae, "latent_dim", 2) != 3 or not (isinstance(down, tuple) and callable(down[0])
                                                   and isinstance(up, tuple) and callable(up[0])):
        return frames
    count = frames
    while up[0](down[0](count)) != count:
        count += 1
    return count


def pad_frames(images: torch.Tensor, count: int) -> torch.Tensor:
    """(frames, ...) with the last frame repeated up to `count` frames, as `pad` repeats the edge in space."""
    if images.shape[0] >= count:
        return images
    return torch.cat([images, images[-1:].expand(count - images.shape[0], *images.shape[1:])])
