"""The maths of SDEdit, apart from any UI: strength -> starting noise level, step counts,
sigma schedules and the noising itself.

Units: every noise level here is a *sigma* in the host's k-diffusion convention
(`model_sampling.sigma_max`, `percent_to_sigma`), never a timestep. Latents passed to
`add_noise` are in the model's own space (`latent_format.process_in` already applied).
"""
import math
import types

import comfy.model_sampling
import comfy.samplers
import torch

STEP_MODES = ("proportional", "all")

# floor(x + 0.5) must see 0.58 * 25 = 14.499999999999998 as the 14.5 it means.
_ROUNDING_SLACK = 1e-9


# A tail whose first step (from sigma_start) spans more than this many times the next one is broken.
BROKEN_TAIL = 3.0

# The longest schedule `levels_below_schedule` builds, each in the host's Python (linear_quadratic on an EPS
# model in "all" mode near strength 0 would ask for far more): a few milliseconds at most.
LEVELS_BELOW_MAX = 4096

# Time-spaced schedulers whose grid ends one step above the model's lowest level, then jumps to 0; in
# "all" mode on SD1.5-type tables (`floor_measured_on`), where that jump is more than FLOOR_JUMP times the
# step before it (`jumps_to_zero`), they run the grid moved down to that level (`floored_schedule`).
FLOOR_JUMP = 2.0
FLOORED_IN_ALL = ("simple", "sgm_uniform")

# The variable in which the host's sigma-spaced schedulers space their levels evenly, and its inverse
# (k-diffusion's get_sigmas_exponential: log sigma; get_sigmas_karras: sigma^(1/rho), rho = 7).
EVEN_IN = {"exponential": (math.log, math.exp),
           "karras": (lambda sigma: sigma ** (1 / 7), lambda u: u ** 7)}


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
    Every scheduler and step count starts from the same noise level, the one the latent was noised to.
    Schedulers that space their levels in the model's time (normal, simple, beta, ...) run the tail of
    their longer schedule, its first sigma set to `sigma_start`: that tail already starts next to it.
    Schedulers that space their levels in sigma (karras, exponential, kl_optimal) would start their
    tail far below `sigma_start`, leaving one huge first step; they are laid out afresh from
    `sigma_start` with the same number of steps instead: in proportional mode karras and exponential
    keep the step size of their `steps`-step schedule (`even_step_bottom`), otherwise the levels span
    `sigma_start` to the model's sigma_min (measured best per scheduler: bench/schedule_error.py).
    linear_quadratic crowds half its levels just under sigma_max: where its tail reaches above
    `sigma_start` it runs its own levels below it instead (`levels_below_schedule`). simple and
    sgm_uniform in "all" mode on SD1.5-type tables run their grid moved down to the model's lowest level
    where their tail ends in a long jump to 0 (`floored_schedule`).
    """
    if step_mode not in STEP_MODES:
        raise ValueError(f"step_mode must be one of {STEP_MODES}, got {step_mode!r}")
    if sigma_start <= 0.0:
        return torch.zeros(0)
    count, total = step_plan(strength, steps, step_mode)
    if not comfy.samplers.SCHEDULER_HANDLERS[scheduler].use_ms:
        bottom = None
        if step_mode == "proportional" and scheduler in EVEN_IN:
            bottom = even_step_bottom(model_sampling, scheduler, steps, count, sigma_start, discard_penultimate)
        return sub_range_schedule(model_sampling, scheduler, count, sigma_start, discard_penultimate, bottom)
    if scheduler == "linear_quadratic":
        tail = full_schedule(model_sampling, scheduler, total, discard_penultimate)[-(count + 1):].float()
        if len(tail) > 1 and tail[1] >= sigma_start:  # crowded above the start level
            below = levels_below_schedule(model_sampling, scheduler, count, total, sigma_start, discard_penultimate)
            if below is not None:
                return below
        return starting_at(tail, sigma_start)  # = tail_schedule, without building the schedule again
    tail = tail_schedule(model_sampling, scheduler, steps, strength, sigma_start, step_mode, discard_penultimate)
    if scheduler in FLOORED_IN_ALL and step_mode == "all" and floor_measured_on(model_sampling) \
            and not is_max_noise(model_sampling, sigma_start):  # strength 1 stays text-to-image
        # Judged on the plain tail, so that dpm_2 / uni_pc change in the same cells as the other samplers.
        plain = tail_schedule(model_sampling, scheduler, steps, strength, sigma_start, step_mode) \
            if discard_penultimate else tail
        if not jumps_to_zero(plain):
            return tail
        floored = floored_schedule(model_sampling, scheduler, count, total, sigma_start, discard_penultimate)
        return tail if floored is None else floored
    if scheduler == "beta" and step_mode == "all" and len(tail) > 2 and \
            float(tail[0] - tail[1]) > BROKEN_TAIL * float(tail[1] - tail[2]):
        # At low strength the tail of a steps/strength-step beta schedule sits in its crowded low end.
        fresh = table_below_schedule(model_sampling, scheduler, count, sigma_start, discard_penultimate)
        return tail if fresh is None else fresh
    return tail


def tail_schedule(model_sampling, scheduler: str, steps: int, strength: float, sigma_start: float,
                  step_mode: str = "proportional", discard_penultimate: bool = False) -> torch.Tensor:
    """The last steps of the full schedule, started at `sigma_start`.

    proportional: the last round(strength * steps) steps of the `steps`-step schedule.
    all: `steps` steps, the tail of the schedule that has steps / strength steps.
    """
    count, total = step_plan(strength, steps, step_mode)
    sigmas = full_schedule(model_sampling, scheduler, total, discard_penultimate)
    return starting_at(sigmas[-(count + 1):].float(), sigma_start)


def levels_below_schedule(model_sampling, scheduler: str, count: int, total: int, sigma_start: float,
                          discard_penultimate: bool = False) -> torch.Tensor | None:
    """The last `count` steps of a schedule longer than `total` steps whose tail lies wholly below
    `sigma_start` where one step fewer's does not, its first level raised to `sigma_start`; None past
    LEVELS_BELOW_MAX steps. Found by doubling, then bisection: the host builds each schedule in Python.

    For a tail crowded above `sigma_start` (linear_quadratic spends half its steps within 2.5 % of
    sigma_max): the scheduler's own levels below the start, where `starting_at` would squeeze them under it.
    """
    def tail(n):
        return full_schedule(model_sampling, scheduler, n, discard_penultimate)[-(count + 1):].float()

    def below(n):
        return float(tail(n)[0]) < sigma_start

    if total >= LEVELS_BELOW_MAX:
        return None
    low, high = total, min(2 * total, LEVELS_BELOW_MAX)  # the tail of `total` steps reaches above: low fails
    while not below(high):
        if high >= LEVELS_BELOW_MAX:
            return None
        low, high = high, min(2 * high, LEVELS_BELOW_MAX)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if below(mid) else (mid, high)
    sigmas = tail(high)
    sigmas[0] = sigma_start
    return sigmas


def even_step_bottom(model_sampling, scheduler: str, steps: int, count: int, sigma_start: float,
                     discard_penultimate: bool = False) -> float | None:
    """The lowest level of `count` steps down from `sigma_start` that keep the step size (in the variable
    the scheduler spaces evenly) of its full `steps`-step schedule; None where that is below the model's
    sigma_min (the default layout down to sigma_min then applies).

    With few steps a schedule laid out down to sigma_min spends them at tiny noise levels and leaves the
    first steps too long; the full schedule's step size does not (measured on exact Gaussian SDEdit).
    """
    u, inverse = EVEN_IN[scheduler]
    low, high = float(model_sampling.sigma_min), float(model_sampling.sigma_max)
    levels = steps + 1 if discard_penultimate else steps  # the host's KSampler asks for one more level then
    n = count + 1 if discard_penultimate else count
    if levels < 2 or n < 2:
        return None
    step = (u(high) - u(low)) / (levels - 1)
    top = u(sigma_start) - (n - 1) * step
    return inverse(top) if top > u(low) else None


def sub_range_schedule(model_sampling, scheduler: str, count: int, sigma_start: float,
                       discard_penultimate: bool = False, bottom: float | None = None) -> torch.Tensor:
    """`count` steps of a sigma-spaced host scheduler laid out over [bottom, sigma_start], then 0.

    The scheduler's own formula with `sigma_start` as its top level and `bottom` (default: the model's
    sigma_min) as its lowest: its spacing is kept whatever the strength. Below sigma_min (a strength
    near 0) the bottom is halved so noise still only goes down.
    """
    handler = comfy.samplers.SCHEDULER_HANDLERS[scheduler].handler
    sigma_min = min(float(model_sampling.sigma_min), sigma_start / 2) if bottom is None else bottom
    n = count + 1 if discard_penultimate else count
    if n == 1:  # kl_optimal divides by n - 1
        sigmas = torch.tensor([sigma_start, 0.0])
    else:
        sigmas = handler(n=n, sigma_min=sigma_min, sigma_max=sigma_start).float()
    if discard_penultimate:
        sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
    sigmas[0] = sigma_start  # the formulas round-trip sigma_start through float32 powers and logs
    return sigmas


def table_below_schedule(model_sampling, scheduler: str, count: int, sigma_start: float,
                         discard_penultimate: bool = False) -> torch.Tensor | None:
    """`count` steps of a scheduler that indexes the model's table of sigmas, over the table cut at `sigma_start`.

    None where the cut table is too short to give `count` distinct levels (a strength near 0).
    """
    table = model_sampling.sigmas
    below = types.SimpleNamespace(sigmas=torch.cat([table[table < sigma_start], table.new_tensor([sigma_start])]))
    sigmas = full_schedule(below, scheduler, count, discard_penultimate).float()
    if len(sigmas) != count + 1:
        return None
    sigmas[0] = sigma_start
    return sigmas


def floor_measured_on(model_sampling) -> bool:
    """The model type `floored_schedule` was measured on and is used for: the 1000-level discrete tables
    of SD1.5/SDXL (EPS or v-prediction; not zero terminal SNR, not a distilled table). Their simple and
    sgm_uniform tails in "all" mode had 1.25-1.35x the error of normal (bench/results/schedule_error.md). Every other
    model type keeps the host's tail, bit for bit: on the flow model of the bench they already meet it.
    """
    ms = comfy.model_sampling
    return (isinstance(model_sampling, ms.ModelSamplingDiscrete) and len(model_sampling.sigmas) == 1000
            and not getattr(model_sampling, "zsnr", False)
            and not isinstance(model_sampling, (ms.ModelSamplingDiscreteEDM, ms.StableCascadeSampling)))


def jumps_to_zero(tail: torch.Tensor) -> bool:
    """A tail of four steps or more whose last step (to 0) is more than FLOOR_JUMP times the one before it."""
    return len(tail) > 4 and float(tail[-2]) > FLOOR_JUMP * float(tail[-3] - tail[-2])


def floored_schedule(model_sampling, scheduler: str, count: int, total: int, sigma_start: float,
                     discard_penultimate: bool = False) -> torch.Tensor | None:
    """`count` steps from `sigma_start`: the last levels of the scheduler's `total`-step grid, moved down the
    grid until the lowest is the model's own lowest level. Every gap between levels stays the grid's own
    step; the first one (from `sigma_start`) spans one to two of them. With `discard_penultimate` the
    lowest level is then dropped, as the host's KSampler drops it. None where the levels would not go
    strictly down from `sigma_start`.

    simple and sgm_uniform end their grid one step above that level, then jump to 0. On the discrete
    tables of SD1.5-type models sigma grows like the square root of the model's time there (alphas_cumprod
    falls linearly from 1), so that jump is about twice the step before it, and in the tail of a
    steps / strength-step schedule it is the largest error. Used where the jump is more than FLOOR_JUMP
    times the step before it, from four steps on (with three, the longer first step outweighs it).
    """
    extra = int(discard_penultimate)  # as full_schedule asks the host
    n, total = count + extra, total + extra
    if n < 2:
        return None
    if scheduler == "sgm_uniform":  # keep the last point of its grid, the one the host drops for 0
        ms = model_sampling
        times = torch.linspace(ms.timestep(ms.sigma_max), ms.timestep(ms.sigma_min), total + 1)[-(n - 1):]
        levels = torch.tensor([float(ms.sigma(t)) for t in times])
    else:  # simple: entries of the model's table at its stride, shifted down the table to entry 0
        table = model_sampling.sigmas.float().cpu()  # rising with the model's time; on the GPU once loaded
        grid = comfy.samplers.calculate_sigmas(model_sampling, scheduler, total)[-n:-1].float()
        index = torch.searchsorted(table, grid)
        levels = table[index - index[-1]]
    sigmas = torch.cat([torch.tensor([sigma_start]), levels, torch.zeros(1)])
    if not bool((sigmas[1:] < sigmas[:-1]).all()):  # e.g. simple past 1000 steps repeats levels
        return None
    return torch.cat([sigmas[:-2], sigmas[-1:]]) if discard_penultimate else sigmas


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
