"""Steps 3 and 4: the U-Net predicts the noise in the noisy latent, conditioned on the prompt, and the
sampler removes it; repeated for the steps that remain below the starting noise level."""
import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview
import torch

from . import checks, guide, latent_info
from .common import CATEGORY, check_latent_channels, io
from .image_size import mask_in_working_frame
from .sdedit_math import STEP_MODES, sdedit_sigmas

NODE = "SDEdit 3 · Denoise"


class ContinueFromNoisyLatent(comfy.samplers.KSAMPLER):
    """One of the host's samplers, started from the noisy latent it is given.

    The host's KSAMPLER.sample first noises the clean latent itself; SDEdit's latent is noised already
    (by Add Noise, possibly edited since), so this starts the same sampler function from `start`.
    Everything else is set as KSAMPLER.sample sets it: the wrapped model gets the clean latent and the
    noise, so the host's KSamplerX0Inpaint re-noises the keep region of a `denoise_mask` after every
    step, and a `denoise_mask_function` or sampler that reads them sees what it sees under the host.
    """

    def __init__(self, sampler_function, extra_options, inpaint_options, start: torch.Tensor):
        super().__init__(sampler_function, extra_options, inpaint_options)
        self.start = start  # the noisy latent, VAE space

    @classmethod
    def of(cls, sampler_name: str, start: torch.Tensor) -> "ContinueFromNoisyLatent":
        host = comfy.samplers.sampler_object(sampler_name)
        if not isinstance(host, comfy.samplers.KSAMPLER):
            raise ValueError(f"{NODE}: sampler_name '{sampler_name}' is not a k-diffusion sampler; "
                             "pick one of the host's built-in samplers.")
        return cls(host.sampler_function, host.extra_options, host.inpaint_options, start)

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None,
               denoise_mask=None, disable_pbar=False):
        extra_args["denoise_mask"] = denoise_mask
        model_k = comfy.samplers.KSamplerX0Inpaint(model_wrap, sigmas)
        model_k.latent_image = latent_image
        if self.inpaint_options.get("random", False):  # as the host draws it, wrapped where its seed + 1 overflows
            generator = torch.manual_seed((extra_args.get("seed", 41) + 1) % 2**64)
            model_k.noise = torch.randn(noise.shape, generator=generator, device="cpu").to(noise.dtype).to(noise.device)
        else:
            model_k.noise = noise
        x = model_wrap.inner_model.process_latent_in(self.start.to(latent_image.device))
        total_steps = len(sigmas) - 1
        k_callback = None
        if callback is not None:
            k_callback = lambda d: callback(d["i"], d["denoised"], d["x"], total_steps)  # noqa: E731
        x = self.sampler_function(model_k, x, sigmas, extra_args=extra_args,
                                  callback=k_callback, disable=disable_pbar, **self.extra_options)
        return model_wrap.inner_model.model_sampling.inverse_noise_scaling(sigmas[-1], x)


def progress_callback(model, steps: int, trajectory: list):
    """The host's progress bar and latent previews, plus a Cancel check after every step; appends each
    step's prediction of the clean latent (model space) to `trajectory`."""
    preview = latent_preview.prepare_callback(model, steps)

    def callback(step, x0, x, total_steps):
        trajectory.append(x0.to(comfy.model_management.intermediate_device(), torch.float32, copy=True))
        preview(step, x0, x, total_steps)
        comfy.model_management.throw_exception_if_processing_interrupted()
    return callback


def denoise(model, positive, negative, cfg: float, sampler_name: str, sigmas: torch.Tensor,
            noisy_latent: torch.Tensor, seed: int, clean_latent: torch.Tensor | None = None,
            noise: torch.Tensor | None = None,
            denoise_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Runs the host's CFG guider and sampler over `sigmas`, from `noisy_latent` (VAE space) on.

    `clean_latent` and `noise` (what Add Noise drew) are what the host's sampler would be given; where
    `denoise_mask` is 0 they make the keep region, re-noised to each step's level.
    Returns the denoised latent and the trajectory: the model's clean-latent prediction at every step,
    in VAE space like the result, step-major (entry s * batch + b is step s of image b).
    """
    guider = comfy.samplers.CFGGuider(model)
    guider.set_conds(positive, negative)
    guider.set_cfg(cfg)
    if clean_latent is None:
        clean_latent = noisy_latent
    if noise is None:
        noise = torch.zeros_like(noisy_latent)
    predictions = []
    samples = guider.sample(noise, clean_latent, ContinueFromNoisyLatent.of(sampler_name, noisy_latent), sigmas,
                            denoise_mask=denoise_mask,
                            callback=progress_callback(model, len(sigmas) - 1, predictions),
                            disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
    samples = samples.to(comfy.model_management.intermediate_device())
    if not predictions:  # adaptive samplers (dpm_adaptive) may finish without reporting a step
        return samples, samples.clone()
    # The callback sees model space; the guider's own process_latent_out brings the result back.
    trajectory = model.get_model_object("latent_format").process_out(torch.cat(predictions))
    return samples, trajectory


def sampling_inputs() -> list:
    """steps, cfg, sampler_name, scheduler, step_mode: Denoise's sampling widgets, shared by the sweep."""
    return [
        io.Int.Input("steps", default=20, min=1, max=10000,
                     tooltip="Steps of the full schedule; see step_mode for how many run."),
        io.Float.Input("cfg", default=7.0, min=0.0, max=100.0, step=0.1, round=0.01,
                       tooltip="Classifier-free guidance scale: how strongly the prompt steers."),
        io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS,
                       tooltip="The host's sampling algorithm."),
        io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS,
                       tooltip="The host's schedule of noise levels."),
        io.Combo.Input("step_mode", options=list(STEP_MODES), default="proportional",
                       tooltip="proportional: runs round(strength x steps) steps, the tail of the "
                               "steps-step schedule (A1111, diffusers). all: runs all steps from the "
                               "starting noise level (ComfyUI's denoise)."),
    ]


def check_widgets(cfg, sampler_name, scheduler, step_mode) -> list:
    return [checks.cfg(NODE, cfg),
            checks.choice(NODE, "sampler_name", sampler_name, comfy.samplers.KSampler.SAMPLERS, "the host's samplers"),
            checks.choice(NODE, "scheduler", scheduler, comfy.samplers.KSampler.SCHEDULERS, "the host's schedulers"),
            checks.choice(NODE, "step_mode", step_mode, STEP_MODES, "the step modes")]


class SDEditSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SDEditSampler",
            display_name=NODE,
            category=CATEGORY,
            description="Steps 3 and 4 of image-to-image: denoises the noisy latent from its noise level "
                        "down to a clean latent, guided by the prompt, with any of the host's samplers "
                        "and schedulers.",
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model; the same one given to Add Noise."),
                io.Conditioning.Input("positive", tooltip="What the result should show (CLIP Text Encode)."),
                io.Conditioning.Input("negative", tooltip="What the result should avoid."),
                io.Latent.Input("noisy_latent", tooltip="The output of SDEdit 2 · Add Noise."),
                *sampling_inputs(),
            ],
            outputs=[
                io.Latent.Output("latent", display_name="latent",
                                 tooltip="The denoised latent: connect it to SDEdit 4 · Decode."),
                io.Latent.Output("trajectory", display_name="trajectory",
                                 tooltip="The model's prediction of the clean latent after every step, as a "
                                         "batch (step by step; with several images, all images of step 1, "
                                         "then of step 2, ...). Decode it to watch the edit form. The last "
                                         "step's prediction is the result (uni_pc blends its last steps). "
                                         "At strength 0: the input latent, once."),
            ],
        )

    @classmethod
    def validate_inputs(cls, cfg, sampler_name, scheduler, step_mode) -> bool | str:
        return checks.first_problem(*check_widgets(cfg, sampler_name, scheduler, step_mode))

    @classmethod
    def execute(cls, model, positive, negative, noisy_latent, steps, cfg, sampler_name, scheduler,
                step_mode) -> io.NodeOutput:
        checks.refuse(*check_widgets(cfg, sampler_name, scheduler, step_mode))
        # first: it refuses nested latents and non-tensors, which the value checks cannot read
        check_latent_channels(NODE, "noisy_latent", noisy_latent["samples"], model)
        checks.refuse(checks.latent(NODE, "noisy_latent", noisy_latent))
        info = latent_info.read(noisy_latent)
        if info is None:
            raise ValueError(f"{NODE}: input 'noisy_latent' carries no SDEdit noise level. Connect it from "
                             "an 'SDEdit 2 · Add Noise' node (Encode → Add Noise → Denoise).")
        samples = noisy_latent["samples"]
        out = latent_info.strip(noisy_latent)
        if info.sigma <= 0.0:  # strength 0: nothing to remove, and no reason to load the model
            return io.NodeOutput(out, {"samples": samples})
        model_sampling = model.get_model_object("model_sampling")
        checks.refuse(checks.same_noise_kind(NODE, "noisy_latent", info.noise_kind, model_sampling))
        if info.sigma > float(model_sampling.sigma_max) * 1.001:
            raise ValueError(f"{NODE}: input 'noisy_latent' was noised to sigma {info.sigma:.4g}, above this "
                             f"model's maximum {float(model_sampling.sigma_max):.4g}. Connect the same MODEL "
                             "to Add Noise and Denoise.")
        sigmas = sdedit_sigmas(model_sampling, scheduler, steps, info.strength, info.sigma, step_mode,
                               sampler_name in comfy.samplers.KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS)
        clean = guide.clean_latent(noisy_latent)
        noise = None if clean is None else comfy.sample.prepare_noise(clean, info.seed, noisy_latent.get("batch_index"))
        mask = noisy_latent.get("noise_mask")
        if mask is not None:
            mask = mask_in_working_frame(mask, guide.geometry(guide.read(noisy_latent)))
        out["samples"], trajectory = denoise(model, positive, negative, cfg, sampler_name, sigmas, samples,
                                             info.seed, clean, noise, mask)
        return io.NodeOutput(out, {"samples": trajectory})
