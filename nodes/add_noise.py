"""SDEdit 2 · Add Noise: noise is added to the latent; the strength sets how much."""
import comfy.sample

from . import checks, masked_content, pictures
from .common import CATEGORY, check_latent_channels, io
from .sdedit_math import add_noise, shuffled_noise, start_sigma

NODE = "SDEdit 2 · Add Noise"


class SDEditAddNoise(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SDEditAddNoise",
            display_name=NODE,
            category=CATEGORY,
            description="The second of the four SDEdit nodes: adds noise to the clean latent. Strength 0 adds none "
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
            hidden=[io.Hidden.prompt, io.Hidden.unique_id],
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
        records = pictures.own_records(READER, latent, cls.hidden)
        latent_format = model.get_model_object("latent_format")
        # Encode's masked_content "latent noise" / "latent nothing" in the masked cells; its noise on a stream of its own.
        encoded = samples
        samples = masked_content.start_in_add_noise(encoded, records, latent_format, lambda: comfy.sample.prepare_noise(
            encoded, masked_content.noise_seed(seed), latent.get("batch_index")))
        start, noise, shuffle = samples, None, ()
        if sigma > 0.0:
            # The host's own noise: CPU generator, one draw per batch_index, as KSampler makes it.
            noise = comfy.sample.prepare_noise(samples, seed, latent.get("batch_index"))
            # Context windows with FreeNoise: the host's sampler starts from its draw shuffled along the frames. The
            # draw is recorded as drawn: Denoise hands it to the host's sampler, whose wrapper shuffles it the same.
            shuffle = checks.freenoise(model)
            samples = latent_format.process_out(add_noise(model_sampling, latent_format.process_in(samples),
                                                          shuffled_noise(noise, shuffle, seed), sigma))
        kind = checks.noise_kind(model_sampling)
        records = [pictures.noisy(r, sigma, float(strength), int(seed), kind, None if noise is None else noise[i],
                                  start[i], shuffle) for i, r in enumerate(records)]
        return io.NodeOutput(pictures.attach(latent, samples, records))


READER = pictures.Reader(
    NODE, "latent", noise_mask=False, keep_region="it cannot be told which picture's keep region it has",
    fix="connect SDEdit 1 · Encode (or SDEdit 3 · Denoise) to this node through batch nodes only (Repeat Latent "
        "Batch, Latent From Batch, Latent Batch, Rebatch Latents), or remove the mask.")
