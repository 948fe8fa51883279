"""The maths of SDEdit, apart from any UI: strength -> starting noise level, step counts,
sigma schedules and the noising itself. The per-scheduler schedule rules are in schedules.py.

Units: every noise level here is a *sigma* in the host's k-diffusion convention
(`model_sampling.sigma_max`, `percent_to_sigma`), never a timestep. Latents passed to
`add_noise` are in the model's own space (`latent_format.process_in` already applied).
"""
import math

import comfy.samplers
import torch

STEP_MODES = ("proportional", "all")

# floor(x + 0.5) must see 0.58 * 25 = 14.499999999999998 as the 14.5 it means.
_ROUNDING_SLACK = 1e-9


def start_sigma(model_sampling, strength: float) -> float:
    """SDEdit's t0 as a noise level: the model's own sigma at fraction `strength` of its diffusion time.

    0 gives 0.0 (no noise), 1 gives sigma_max. The host's percent_to_sigma counts from the noisy end,
    hence 1 - strength; at percent 0 discrete models return a huge sentinel, hence the clamp.
    """
    if strength <= 0.0:
        return 0.0
    sigma = float(model_sampling.percent_to_sigma(1.0 - strength))
    return min(sigma, float(model_sampling.sigma_max))


def is_max_noise(model_sampling, sigma: float) -> bool:
    """The host's own test for "starts from pure noise" (comfy.samplers.Sampler.max_denoise)."""
    sigma_max = float(model_sampling.sigma_max)
    return math.isclose(sigma_max, sigma, rel_tol=1e-05) or sigma > sigma_max


def shuffled_noise(noise: torch.Tensor, freenoise: tuple, seed: int) -> torch.Tensor:
    """The noise a sampler starts from: `noise` itself, or a copy shuffled along the frames as the host's context
    windows shuffle their sampler's noise with FreeNoise on (`freenoise`: checks.freenoise; a sampler wrapper)."""
    if not freenoise:
        return noise
    from comfy.context_windows import apply_freenoise  # only hosts that have FreeNoise (0.4.0 on) get here
    return apply_freenoise(noise.clone(), *freenoise, int(seed))


def add_noise(model_sampling, latent: torch.Tensor, noise: torch.Tensor, sigma: float) -> torch.Tensor:
    """The noisy latent at `sigma` (SDEdit 2 · Add Noise), made by the model's own `noise_scaling`.

    That one call covers EPS and v-prediction (latent + sigma * noise) and flow matching
    (sigma * noise + (1 - sigma) * latent). At the maximum noise level the input is dropped, so the
    start is pure noise exactly as in text-to-image: for EPS models noise_scaling alone would keep
    latent / sigma_max of it (about 7 % for SD1.5).
    """
    if sigma <= 0.0:
        return latent.clone()
    pure = is_max_noise(model_sampling, sigma)
    if pure:
        latent = torch.zeros_like(latent)
    sigma_t = torch.tensor(sigma, dtype=torch.float32)
    return model_sampling.noise_scaling(sigma_t, noise, latent, max_denoise=pure)


def proportional_step_count(strength: float, steps: int) -> int:
    """Steps that run in "proportional" mode: round(strength * steps), halves up, at least one."""
    return max(1, math.floor(strength * steps + 0.5 + _ROUNDING_SLACK))


def step_plan(strength: float, steps: int, step_mode: str) -> tuple[int, int]:
    """(steps that run, steps of the schedule they are the tail of): what Denoise will do.

    proportional: round(strength * steps) of `steps` (A1111, diffusers). all: `steps` of the
    steps / strength schedule (the host's KSampler `denoise`). Strength 0 runs nothing.
    """
    if step_mode not in STEP_MODES:
        raise ValueError(f"step_mode must be one of {STEP_MODES}, got {step_mode!r}")
    if strength <= 0.0:
        return 0, steps
    if step_mode == "proportional":
        return proportional_step_count(strength, steps), steps
    return steps, max(steps, int(steps / strength + _ROUNDING_SLACK))


def full_schedule(model_sampling, scheduler: str, steps: int, discard_penultimate: bool = False) -> torch.Tensor:
    """The host scheduler's `steps`-step schedule (steps + 1 sigmas, ending at 0).

    `discard_penultimate` repeats what the host's KSampler does for dpm_2 and uni_pc samplers.
    """
    if discard_penultimate:
        sigmas = comfy.samplers.calculate_sigmas(model_sampling, scheduler, steps + 1)
        return torch.cat([sigmas[:-2], sigmas[-1:]])
    return comfy.samplers.calculate_sigmas(model_sampling, scheduler, steps)


def sdedit_sigmas(model_sampling, scheduler: str, steps: int, strength: float, sigma_start: float,
                  step_mode: str = "proportional", discard_penultimate: bool = False) -> torch.Tensor:
    """The sigmas that step 3 (SDEdit 3 · Denoise) walks: from `sigma_start` down to 0.

    proportional: round(strength * steps) steps (as A1111 and diffusers count them).
    all: `steps` steps (as the host's KSampler counts `denoise`).
    Every scheduler and step count starts from the same noise level, the one the latent was noised to;
    how each scheduler lays out its steps below it is its rule in the table of nodes/schedules.py.
    """
    if step_mode not in STEP_MODES:
        raise ValueError(f"step_mode must be one of {STEP_MODES}, got {step_mode!r}")
    if sigma_start <= 0.0:
        return torch.zeros(0)
    from .schedules import rule_for  # the table of rules builds on this module
    return rule_for(scheduler).sigmas(model_sampling, scheduler, steps, strength, sigma_start, step_mode,
                                      discard_penultimate)


def tail_schedule(model_sampling, scheduler: str, steps: int, strength: float, sigma_start: float,
                  step_mode: str = "proportional", discard_penultimate: bool = False) -> torch.Tensor:
    """The last steps of the full schedule, started at `sigma_start`.

    proportional: the last round(strength * steps) steps of the `steps`-step schedule.
    all: `steps` steps, the tail of the schedule that has steps / strength steps.
    """
    count, total = step_plan(strength, steps, step_mode)
    sigmas = full_schedule(model_sampling, scheduler, total, discard_penultimate)
    return starting_at(sigmas[-(count + 1):].float(), sigma_start)


def starting_at(tail: torch.Tensor, sigma_start: float) -> torch.Tensor:
    """`tail` with its first sigma set to `sigma_start`, noise still only ever going down.

    Schedulers that crowd their steps at high noise (beta, linear_quadratic on EPS models) can have a
    tail whose second sigma is above the starting level; replacing only the first sigma would make the
    sampler add noise there, so such a tail is scaled down as a whole to start at `sigma_start`.
    """
    tail = tail.clone()
    if len(tail) > 1 and tail[1] >= sigma_start:
        return tail * (sigma_start / tail[0])
    tail[0] = sigma_start
    return tail
