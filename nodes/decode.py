"""Step 5: the VAE decodes the final latent to an image."""

from . import checks, guide
from .common import CATEGORY, io
from .vae_passes import decode_latent
from .image_size import from_working, mask_in_output_frame, to_output_frame
from .masking import composite


def edit_mask(latent: dict, g, carried: dict):
    """The mask over Decode's output: Encode's feathered mask, or a host noise_mask set since."""
    noise_mask = latent.get("noise_mask")
    if noise_mask is None:
        return None
    if carried.get("mask") is not None and noise_mask is carried.get("working_mask"):
        return to_output_frame(carried["mask"], g)
    return mask_in_output_frame(noise_mask, g, working=False)


class SDEditDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SDEditDecode",
            display_name="SDEdit 4 · Decode",
            category=CATEGORY,
            description="Step 5 of image-to-image: decodes the denoised latent back into an image "
                        "with the checkpoint's VAE, at the input's size (see Encode's size_mode). Where the "
                        "latent carries a mask, the kept part is the input image, pixel for pixel.",
            inputs=[
                io.Latent.Input("latent", tooltip="The denoised latent from SDEdit 3 · Denoise."),
                io.Vae.Input("vae", tooltip="The VAE that encoded the image (the checkpoint's VAE)."),
            ],
            outputs=[
                io.Image.Output("image", display_name="image",
                                tooltip="The edited picture; with a mask, the unmasked part is the input's pixels."),
            ],
        )

    @classmethod
    def execute(cls, latent, vae) -> io.NodeOutput:
        checks.refuse(checks.vae_fits_latent("SDEdit 4 · Decode", "latent", latent["samples"], vae))
        images = decode_latent(vae, latent["samples"])
        if images.ndim == 5:  # video VAEs give (batch, frames, h, w, c): one image per frame
            images = images.reshape(-1, *images.shape[-3:])
        carried = guide.read(latent) or {}
        g = guide.geometry(carried)
        if g is None or tuple(images.shape[1:3]) != (g.work_height, g.work_width):
            return io.NodeOutput(images)  # not from Encode, or resized since: nothing to undo
        images = from_working(images, g)
        mask, pixels = edit_mask(latent, g, carried), carried.get("pixels")
        if mask is not None and pixels is not None and pixels.shape[0] == images.shape[0]:
            images = composite(to_output_frame(pixels, g), images, mask.to(images.device))
        return io.NodeOutput(images)
