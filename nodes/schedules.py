"""The per-scheduler schedule rules of SDEdit: how each of the host's schedulers lays out the steps below the
start level, as a table like the host's own `comfy.samplers.SCHEDULER_HANDLERS`. SDEdit's core (start level,
noising, step plan) is in sdedit_math.py; `sdedit_sigmas` there asks `rule_for` here.

Every rule is measured on exact Gaussian SDEdit against the closed form (bench/schedule_error.py, the results
in bench/results/schedule_error.md): each entry names the table that justifies it. A scheduler not in the table
runs the host's own tail (`HOST_TAIL`), or is laid out afresh where it spaces its levels in sigma (`SIGMA_SPACED`).
"""
import dataclasses
import math
import types
from collections.abc import Callable

import comfy.model_sampling
import comfy.samplers
import torch

from . import sdedit_math as sm

RESULTS = "bench/results/schedule_error.md"

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


@dataclasses.dataclass(frozen=True)
class Rule:
    """`sigmas(model_sampling, scheduler, steps, strength, sigma_start, step_mode, discard_penultimate)`: the
    sigmas from `sigma_start` down to 0; `measured`: the bench result that justifies it."""
    sigmas: Callable[..., torch.Tensor]
    measured: str


# --- the rules ----------------------------------------------------------------------------------------------

def host_tail(model_sampling, scheduler, steps, strength, sigma_start, step_mode, discard_penultimate):
    """The tail of the host's own schedule, its first sigma set to `sigma_start` (sdedit_math.tail_schedule):
    time-spaced schedulers already start next to it."""
    return sm.tail_schedule(model_sampling, scheduler, steps, strength, sigma_start, step_mode, discard_penultimate)


def sigma_spaced(model_sampling, scheduler, steps, strength, sigma_start, step_mode, discard_penultimate):
    """Laid out afresh from `sigma_start` with the same number of steps (their tail would start far below it,
    leaving one huge first step): in proportional mode karras and exponential keep the step size of their
    `steps`-step schedule (`even_step_bottom`), otherwise the levels span `sigma_start` to sigma_min."""
    count, _ = sm.step_plan(strength, steps, step_mode)
    bottom = None
    if step_mode == "proportional" and scheduler in EVEN_IN:
        bottom = even_step_bottom(model_sampling, scheduler, steps, count, sigma_start, discard_penultimate)
    return sub_range_schedule(model_sampling, scheduler, count, sigma_start, discard_penultimate, bottom)


def crowded_start(model_sampling, scheduler, steps, strength, sigma_start, step_mode, discard_penultimate):
    """linear_quadratic crowds half its levels just under sigma_max: where its tail reaches above `sigma_start`
    it runs its own levels below it instead (`levels_below_schedule`)."""
    count, total = sm.step_plan(strength, steps, step_mode)
    tail = sm.full_schedule(model_sampling, scheduler, total, discard_penultimate)[-(count + 1):].float()
    if len(tail) > 1 and tail[1] >= sigma_start:  # crowded above the start level
        below = levels_below_schedule(model_sampling, scheduler, count, total, sigma_start, discard_penultimate)
        if below is not None:
            return below
    return sm.starting_at(tail, sigma_start)  # = tail_schedule, without building the schedule again


def floored_in_all(model_sampling, scheduler, steps, strength, sigma_start, step_mode, discard_penultimate):
    """The host's tail; in "all" mode on SD1.5-type tables, where it ends in a long jump to 0, its grid moved
    down to the model's lowest level (`floored_schedule`)."""
    tail = host_tail(model_sampling, scheduler, steps, strength, sigma_start, step_mode, discard_penultimate)
    if step_mode != "all" or not floor_measured_on(model_sampling) or sm.is_max_noise(model_sampling, sigma_start):
        return tail  # strength 1 stays text-to-image
    # Judged on the plain tail, so that dpm_2 / uni_pc change in the same cells as the other samplers.
    plain = sm.tail_schedule(model_sampling, scheduler, steps, strength, sigma_start, step_mode) \
        if discard_penultimate else tail
    if not jumps_to_zero(plain):
        return tail
    count, total = sm.step_plan(strength, steps, step_mode)
    floored = floored_schedule(model_sampling, scheduler, count, total, sigma_start, discard_penultimate)
    return tail if floored is None else floored


def unbroken(model_sampling, scheduler, steps, strength, sigma_start, step_mode, discard_penultimate):
    """The host's tail; in "all" mode at low strength, where the tail of a steps/strength-step beta schedule sits
    in its crowded low end (a first step over BROKEN_TAIL times the next), the model's table cut at
    `sigma_start` (`table_below_schedule`)."""
    tail = host_tail(model_sampling, scheduler, steps, strength, sigma_start, step_mode, discard_penultimate)
    if step_mode == "all" and len(tail) > 2 and float(tail[0] - tail[1]) > BROKEN_TAIL * float(tail[1] - tail[2]):
        count, _ = sm.step_plan(strength, steps, step_mode)
        fresh = table_below_schedule(model_sampling, scheduler, count, sigma_start, discard_penultimate)
        return tail if fresh is None else fresh
    return tail


# --- what the rules build on -------------------------------------------------------------------------------

def levels_below_schedule(model_sampling, scheduler: str, count: int, total: int, sigma_start: float,
                          discard_penultimate: bool = False) -> torch.Tensor | None:
    """The last `count` steps of a schedule longer than `total` steps whose tail lies wholly below
    `sigma_start` where one step fewer's does not, its first level raised to `sigma_start`; None past
    LEVELS_BELOW_MAX steps. Found by doubling, then bisection: the host builds each schedule in Python.

    For a tail crowded above `sigma_start` (linear_quadratic spends half its steps within 2.5 % of
    sigma_max): the scheduler's own levels below the start, where `starting_at` would squeeze them under it.
    """
    def tail(n):
        return sm.full_schedule(model_sampling, scheduler, n, discard_penultimate)[-(count + 1):].float()

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
    sigmas = sm.full_schedule(below, scheduler, count, discard_penultimate).float()
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


# --- the table ----------------------------------------------------------------------------------------------

HOST_TAIL = Rule(host_tail, f"{RESULTS}: normal and ddim_uniform, the reference rows, unchanged")
SIGMA_SPACED = Rule(sigma_spaced, f"{RESULTS}: karras, exponential and kl_optimal rows (bold: changed), all tables")

SCHEDULE_RULES = {
    "karras": SIGMA_SPACED,
    "exponential": SIGMA_SPACED,
    "kl_optimal": SIGMA_SPACED,
    "linear_quadratic": Rule(crowded_start, f"{RESULTS}: linear_quadratic (exempt) rows, SD1.5 EPS tables"),
    "simple": Rule(floored_in_all, f"{RESULTS}: 'simple and sgm_uniform in `all` mode on SD1.5, 4-50 steps'"),
    "sgm_uniform": Rule(floored_in_all, f"{RESULTS}: 'simple and sgm_uniform in `all` mode on SD1.5, 4-50 steps'"),
    "beta": Rule(unbroken, f"{RESULTS}: beta rows, step_mode all, SD1.5 and flow (bold at s <= 0.3)"),
}


def rule_for(scheduler: str) -> Rule:
    """The rule for one of the host's schedulers: the table's, else by how the host spaces its levels."""
    rule = SCHEDULE_RULES.get(scheduler)
    if rule is not None:
        return rule
    return HOST_TAIL if comfy.samplers.SCHEDULER_HANDLERS[scheduler].use_ms else SIGMA_SPACED
