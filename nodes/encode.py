"""SDEdit 1 · Encode: the VAE encodes the image to a latent (the paper's first step)."""

from . import checks, pictures
from .common import CATEGORY, io
from .vae_passes import encode_pixels
from .image_size import SIZE_MODES, mask_to_working, to_working, working_geometry
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
                        "comes back from the input pixel for pixel.",
            inputs=[
                io.Image.Input("image", tooltip="The picture to start from (alpha is ignored)."),
                io.Vae.Input("vae", tooltip="The VAE of the checkpoint that will denoise the latent."),
                io.Mask.Input("mask", optional=True,
                              tooltip="Optional: where to edit (1 = edit, 0 = keep), e.g. Load Image's mask "
                                      "or the mask editor. Resized to the image; one mask serves a batch. "
                                      "The kept part is returned bit for bit by SDEdit 4 · Decode."),
                io.Int.Input("mask_feather", default=0, min=0, max=256, optional=True,
                             tooltip="Pixels over which the edit fades in inside the mask's edge "
                                     "(0 = hard edge). The kept part never changes."),
                io.Combo.Input("size_mode", options=list(SIZE_MODES), default="pad", optional=True,
                               tooltip="Sides that are not a multiple of the VAE's factor (8): pad "
                                       "(edge-replicated, Decode returns the input's size), crop (centre crop, "
                                       "the output is smaller) or resize (Lanczos to the nearest multiple, "
                                       "Decode returns the input's size)."),
            ],
            outputs=[
                io.Latent.Output("latent", display_name="latent",
                                 tooltip="The image as a clean latent: connect it to SDEdit 2 · Add Noise."),
            ],
        )

    @classmethod
    def validate_inputs(cls, size_mode="pad") -> bool | str:
        return checks.first_problem(checks.choice(NODE, "size_mode", size_mode, SIZE_MODES, "the size modes"))

    @classmethod
    def execute(cls, image, vae, mask=None, mask_feather=0, size_mode="pad") -> io.NodeOutput:
        checks.refuse(checks.image(NODE, "image", image))
        pixels = image[:, :, :, :3]
        g = working_geometry(pixels.shape[1], pixels.shape[2], vae_factor(vae), size_mode)
        samples = encode_pixels(vae, to_working(pixels, g))
        out = {}
        edit_mask = working_mask = None
        if mask is not None:
            edit_mask = feather(fit_mask(mask, pixels.shape[0], g.height, g.width, NODE, "mask"), mask_feather)
            working_mask = mask_to_working(edit_mask, g).unsqueeze(1)
            out["noise_mask"] = working_mask  # the host's own key: its samplers mask by it
        records = pictures.from_encode(samples, pixels, edit_mask, working_mask, g)
        return io.NodeOutput(pictures.attach(out, samples, records))
