"""Step 5: the VAE decodes the final latent to an image."""

from .common import CATEGORY, io
from .vae_passes import decode_latent


class SDEditDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SDEditDecode",
            display_name="SDEdit 4 · Decode",
            category=CATEGORY,
            description="Step 5 of image-to-image: decodes the denoised latent back into an image "
                        "with the checkpoint's VAE.",
            inputs=[
                io.Latent.Input("latent", tooltip="The denoised latent from SDEdit 3 · Denoise."),
                io.Vae.Input("vae", tooltip="The VAE that encoded the image (the checkpoint's VAE)."),
            ],
            outputs=[
                io.Image.Output("image", display_name="image", tooltip="The edited picture."),
            ],
        )

    @classmethod
    def execute(cls, latent, vae) -> io.NodeOutput:
        images = decode_latent(vae, latent["samples"])
        if images.ndim == 5:  # video VAEs give (batch, frames, h, w, c): one image per frame
            images = images.reshape(-1, *images.shape[-3:])
        return io.NodeOutput(images)
