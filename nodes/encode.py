"""Step 1: the VAE encodes the image to a latent."""

from .common import CATEGORY, io
from .vae_passes import encode_pixels


class SDEditEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SDEditEncode",
            display_name="SDEdit 1 · Encode",
            category=CATEGORY,
            description="Step 1 of image-to-image: encodes the input image into the latent space "
                        "with the checkpoint's VAE.",
            inputs=[
                io.Image.Input("image", tooltip="The picture to start from (alpha is ignored)."),
                io.Vae.Input("vae", tooltip="The VAE of the checkpoint that will denoise the latent."),
            ],
            outputs=[
                io.Latent.Output("latent", display_name="latent",
                                 tooltip="The image as a clean latent: connect it to SDEdit 2 · Add Noise."),
            ],
        )

    @classmethod
    def execute(cls, image, vae) -> io.NodeOutput:
        return io.NodeOutput({"samples": encode_pixels(vae, image[:, :, :, :3])})
