"""Step 2: noise is added to the latent; the strength sets how much."""
import comfy.sample

from . import checks, guide, latent_info
from .common import CATEGORY, check_latent_channels, io
from .sdedit_math import add_noise, start_sigma

NODE = "SDEdit 2 · Add Noise"


class SDEditAddNoise(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SDEditAddNoise",
            display_name=NODE,
            category=CATEGORY,
            description="Step 2 of image-to-image: adds noise to the clean latent. Strength 0 adds none "
                        "(the image comes back unchanged), 1 replaces the latent with pure noise "
                        "(text-to-image); in between the latent is noised to the model's own noise level "
                        "at that fraction of its diffusion time.",
            inputs=[
                io.Model.Input("model", tooltip="The model that will denoise: its noise schedule turns "
                                                "strength into a noise level."),
                io.Latent.Input("latent", tooltip="The clean latent from SDEdit 1 · Encode."),
                io.Float.Input("strength", default=0.6, min=0.0, max=1.0, step=0.01,
                               tooltip="Denoising strength: 0 keeps the image, 1 ignores it. "
                                       "Same meaning as A1111's and diffusers' strength."),
                io.Int.Input("seed", default=0, min=0, max=0xffffffffffffffff, control_after_generate=True,
                             tooltip="Seed of the noise (and of the fresh noise ancestral/SDE samplers add)."),
            ],
            outputs=[
                io.Latent.Output("noisy_latent", display_name="noisy_latent",
                                 tooltip="The noised latent and its noise level: connect it to "
                                         "SDEdit 3 · Denoise."),
            ],
        )

    @classmethod
    def validate_inputs(cls, strength) -> bool | str:
        return checks.first_problem(checks.strength(NODE, strength))

    @classmethod
    def execute(cls, model, latent, strength, seed) -> io.NodeOutput:
        samples = latent["samples"]
        checks.refuse(checks.strength(NODE, strength))
        check_latent_channels(NODE, "latent", samples, model)  # first: it refuses nested latents and non-tensors
        checks.refuse(checks.latent(NODE, "latent", latent))
        model_sampling = model.get_model_object("model_sampling")
        sigma = start_sigma(model_sampling, strength)
        info = latent_info.NoiseInfo(sigma=sigma, strength=float(strength), seed=int(seed),
                                     noise_kind=checks.noise_kind(model_sampling))
        out = info.attach(latent)
        if guide.clean_latent(latent) is None:  # not from SDEdit 1 · Encode: this latent is the guide
            out = guide.attach(out, latent=samples, pixels=None, mask=None, geometry=None, working_mask=None)
        if sigma > 0.0:
            latent_format = model.get_model_object("latent_format")
            # The host's own noise: CPU generator, one draw per batch_index, as KSampler makes it.
            noise = comfy.sample.prepare_noise(samples, seed, latent.get("batch_index"))
            noisy = add_noise(model_sampling, latent_format.process_in(samples), noise, sigma)
            out["samples"] = latent_format.process_out(noisy)
        return io.NodeOutput(out)
