"""The sampling engine of SDEdit 3 · Denoise: the host's samplers continued from a noisy latent, one sampler run per
noise level of the batch, and the step-major trajectory of the runs.

A mode of denoising is one call into `run`, as tiling is (nodes/tiles.py wraps the guider): `run` finds each
picture's record, groups the batch by noise level (`Group`), checks the level against the model and hands each
group to `mode(guider, sampler, group, plan)`, which returns the group's denoised latent, trajectory and sigmas.
`whole` is the plain run; the strength map's (nodes/strength_map.py) and any later mode (FlowEdit) are others.
"""
import dataclasses

import comfy.model_management
import comfy.samplers
import comfy.utils
import latent_preview
import torch

from . import checks, pictures, tiles
from .sdedit_math import sdedit_sigmas

NODE = "SDEdit 3 · Denoise"

# sha256 of the host's comfy.samplers.KSAMPLER.sample as ContinueFromNoisyLatent.sample mirrors it (ComfyUI 0.3.64,
# the same in 0.3.50 and 0.8.0; as the AST prints it, without comments and layout): tests/test_engine.py fails
# when the host's method changes under the mirror.
MIRRORED_KSAMPLER_SAMPLE = "e3b0fdfb242ea034c6db3f5f740078376fd20ca24fa6e42639f81b89fa8b705f"


class ContinueFromNoisyLatent(comfy.samplers.KSAMPLER):
    """One of the host's samplers, started from the noisy latent it is given.

    The host's KSAMPLER.sample first noises the clean latent itself; SDEdit's latent is noised already
    (by Add Noise, possibly edited since), so this starts the same sampler function from `start`.
    Everything else is set as KSAMPLER.sample sets it: the wrapped model gets the clean latent and the
    noise, so the host's KSamplerX0Inpaint re-noises the keep region of a `denoise_mask` after every
    step, and a `denoise_mask_function` or sampler that reads them sees what it sees under the host.
    `sample` mirrors the host's method (it cannot call it: the host noises first, draws ddim's inpaint noise
    from seed + 1 unwrapped, and always undoes the noise scaling, which a run that stops above 0 must not);
    MIRRORED_KSAMPLER_SAMPLE and tests/test_engine.py hold it to the host's.
    """

    def __init__(self, sampler_function, extra_options, inpaint_options, start: torch.Tensor, final: bool = True):
        super().__init__(sampler_function, extra_options, inpaint_options)
        self.start = start  # the noisy latent, VAE space
        self.final = final  # False: the run stops above 0 and its noisy latent goes on to another run

    @classmethod
    def of(cls, sampler, start: torch.Tensor, node: str = NODE, input_name: str = "sampler_name",
           final: bool = True) -> "ContinueFromNoisyLatent":
        """`sampler`: a host SAMPLER (KSAMPLER), or the name of one of the host's samplers."""
        host = comfy.samplers.sampler_object(sampler) if isinstance(sampler, str) else sampler
        if not isinstance(host, comfy.samplers.KSAMPLER):
            raise ValueError(f"{node}: input '{input_name}' is not a k-diffusion sampler ({type(host).__name__}), "
                             "so it cannot continue from a noisy latent. Fix: use the host's KSamplerSelect or "
                             "one of its Sampler... nodes (SamplerEulerAncestral, SamplerDPMPP_2M_SDE, ...).")
        return cls(host.sampler_function, host.extra_options, host.inpaint_options, start, final)

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
        if not self.final:  # still noisy: the next run continues from this very latent
            return x
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


def discards_penultimate(sampler) -> bool:
    """Whether the host's KSampler drops the penultimate sigma for this sampler (dpm_2, uni_pc, ...)."""
    if isinstance(sampler, str):
        return sampler in comfy.samplers.KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS
    function = getattr(sampler, "sampler_function", None)
    return any(comfy.samplers.sampler_object(name).sampler_function is function
               for name in comfy.samplers.KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS)


def sample(guider, sampler, sigmas: torch.Tensor, start: torch.Tensor, seed: int, clean_latent: torch.Tensor,
           noise: torch.Tensor, denoise_mask: torch.Tensor | None, callback, final: bool = True) -> torch.Tensor:
    """One host sampler run over `sigmas` from the noisy latent `start` (VAE space), on the intermediate device."""
    out = guider.sample(noise, clean_latent, ContinueFromNoisyLatent.of(sampler, start, final=final), sigmas,
                        denoise_mask=denoise_mask, callback=callback,
                        disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
    return out.to(comfy.model_management.intermediate_device())


def trajectory_of(model, samples: torch.Tensor, predictions: list) -> torch.Tensor:
    """The progress callback's predictions (model space) in VAE space, step-major; adaptive samplers
    (dpm_adaptive) may finish without reporting a step: then the result, once."""
    if not predictions:
        return samples.clone()
    return model.get_model_object("latent_format").process_out(torch.cat(predictions))


def denoise(guider, sampler, sigmas: torch.Tensor, noisy_latent: torch.Tensor, seed: int,
            clean_latent: torch.Tensor | None = None, noise: torch.Tensor | None = None,
            denoise_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Runs the host's `guider` with `sampler` (a SAMPLER or a sampler's name) over `sigmas`, from
    `noisy_latent` (VAE space) on.

    `clean_latent` and `noise` (what Add Noise drew) are what the host's sampler would be given; where
    `denoise_mask` is 0 they make the keep region, re-noised to each step's level.
    Returns the denoised latent and the trajectory: the model's clean-latent prediction at every step,
    in VAE space like the result, step-major (entry s * batch + b is step s of image b).
    """
    model = guider.model_patcher
    if clean_latent is None:
        clean_latent = noisy_latent
    if noise is None:
        noise = torch.zeros_like(noisy_latent)
    predictions = []
    samples = sample(guider, sampler, sigmas, noisy_latent, seed, clean_latent, noise, denoise_mask,
                     progress_callback(model, len(sigmas) - 1, predictions))
    # The callback sees model space; the guider's own process_latent_out brings the result back.
    return samples, trajectory_of(model, samples, predictions)


# --- one run per noise level ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Plan:
    """The schedule widgets of a run: `sigmas(strength, sigma)` is the step plan from a level (sdedit_sigmas)."""
    model_sampling: object
    scheduler: str
    steps: int
    step_mode: str
    discard_penultimate: bool

    def sigmas(self, strength: float, sigma: float) -> torch.Tensor:
        return sdedit_sigmas(self.model_sampling, self.scheduler, self.steps, strength, sigma, self.step_mode,
                             self.discard_penultimate)


@dataclasses.dataclass(frozen=True, eq=False)
class Group:
    """The rows of the batch at one noise level (one sampler run), with what the host's sampler is given for them."""
    rows: list                      # their places in the batch
    records: list                   # their records (pictures.Picture)
    noisy: torch.Tensor             # their noisy latents (VAE space): where the run starts
    clean: torch.Tensor             # their clean latents: the keep region's source
    noise: torch.Tensor             # the noise Add Noise drew for them (zeros where it drew none)
    mask: torch.Tensor | None       # their denoise mask (pictures.keep_masks); None: edit everywhere

    @property
    def sigma(self) -> float:
        return self.records[0].sigma

    @property
    def strength(self) -> float:
        return self.records[0].strength

    @property
    def seed(self) -> int:
        return self.records[0].seed


def group_of(latent: dict, records: list, rows: list) -> Group:
    samples = latent["samples"]
    part = samples[rows]
    picked = [records[i] for i in rows]
    clean = torch.stack([r.clean for r in picked]).to(part.dtype)
    noise = torch.stack([torch.zeros_like(r.clean) if r.noise is None else r.noise for r in picked])
    return Group(rows, picked, part, clean, noise.to(part.dtype), pictures.keep_masks(latent, records, rows))


def whole(guider, sampler, group: Group, plan: Plan) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The plain mode: one sampler run from the group's level to 0, its mask (0/1) the host's inpaint blend."""
    sigmas = plan.sigmas(group.strength, group.sigma)
    out, trajectory = denoise(guider, sampler, sigmas, group.noisy, group.seed, group.clean, group.noise, group.mask)
    return out, trajectory, sigmas


def check_level(node: str, sigma: float, kind: str, model_sampling) -> None:
    """Refused where the latent was noised by another kind of model, or above this model's maximum."""
    checks.refuse(checks.same_noise_kind(node, "noisy_latent", kind, model_sampling))
    if sigma > float(model_sampling.sigma_max) * 1.001:
        raise ValueError(f"{node}: input 'noisy_latent' was noised to sigma {sigma:.4g}, above this "
                         f"model's maximum {float(model_sampling.sigma_max):.4g}. Connect the same MODEL "
                         "to Add Noise and Denoise.")


def run(node: str, guider, sampler, latent: dict, steps: int, scheduler: str, step_mode: str,
        hidden, tiling: tiles.Tiling | None = None, mode=whole) -> tuple[dict, dict, torch.Tensor]:
    """Denoising for every picture of the batch, each from its own noise level (one `mode` run per level):
    the denoised LATENT, the trajectory LATENT and the sigmas of the first run. With `tiling`, the model runs
    on blended tiles of the latent (nodes/tiles.py); None: on the whole latent."""
    samples = latent["samples"]
    records = pictures.noisy_records(node, latent, hidden)
    if tiling is not None:
        guider = tiles.tiled_guider(node, guider, tiling)
    model_sampling = guider.model_patcher.get_model_object("model_sampling")
    plan = Plan(model_sampling, scheduler, steps, step_mode, discards_penultimate(sampler))
    results, trajectories, first_sigmas = [None] * len(records), [], None
    for (sigma, strength, seed, kind), rows in pictures.by_level(records).items():
        if sigma <= 0.0:  # strength 0: nothing to remove
            out = trajectory = samples[rows]
            sigmas = torch.zeros(0)
        else:
            check_level(node, sigma, kind, model_sampling)
            checks.refuse(*(checks.same_freenoise(node, "noisy_latent", made_with, guider.model_patcher)
                            for made_with in {records[i].freenoise for i in rows}))
            out, trajectory, sigmas = mode(guider, sampler, group_of(latent, records, rows), plan)
        first_sigmas = sigmas if first_sigmas is None else first_sigmas
        for j, i in enumerate(rows):
            results[i] = out[j]
        trajectories.append((rows, trajectory))
    finished = [pictures.denoised(r) for r in records]
    done = pictures.attach(latent, torch.stack(results), finished)
    # Every step's prediction is of the same picture as the result (which is often the last entry, bit for bit):
    # each carries the picture's record, so Decode brings every step back to the input's size, frames and kept
    # pixels alike, not only the entry that equals the result.
    predicted = step_major(trajectories, len(records))
    steps_of = pictures.attach({}, predicted, [finished[i % len(records)] for i in range(predicted.shape[0])])
    return done, steps_of, first_sigmas


def step_major(trajectories, batch: int) -> torch.Tensor:
    """One trajectory from the runs' own (each step-major over its rows): entry s * batch + b is step s of
    picture b; a picture whose run had fewer steps repeats its last prediction."""
    if len(trajectories) == 1:
        return trajectories[0][1]
    steps = max(t.shape[0] // len(rows) for rows, t in trajectories)
    entries = [None] * (steps * batch)
    for rows, t in trajectories:
        own = t.shape[0] // len(rows)
        for s in range(steps):
            for j, b in enumerate(rows):
                entries[s * batch + b] = t[min(s, own - 1) * len(rows) + j]
    return torch.stack(entries)
