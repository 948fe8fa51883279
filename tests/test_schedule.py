"""Schedules that keep each scheduler's spacing below the strength's noise level, checked
against SDEdit's closed form on Gaussian data through the host's real sampler, plus the model-call minimum."""
import math
import sys

import comfy.model_sampling
import comfy.samplers
import pytest
import torch
from conftest import REPO
from sdedit_img2img.nodes import schedules
from sdedit_img2img.nodes import sdedit_math as sm
from helpers import counting, eps_sampling, flow_sampling, picture, sdedit

sys.path.insert(0, str(REPO / "bench"))
import schedule_error as se  # noqa: E402  (the bench's closed-form machinery, shared)

TIME_SPACED_KEPT = ("normal", "ddim_uniform")


@pytest.fixture(scope="module")
def table(sd15):
    return se.error_table(sd15[0], sd15[1], steps=20)


def test_every_scheduler_is_within_a_quarter_of_normal_and_never_worse_than_before(table):
    assert not se.failures(table)


def test_sigma_spaced_schedulers_got_much_better_at_low_strength(table):
    """The point of the change: karras/exponential/kl_optimal no longer start with one huge step."""
    for kind, mode, scheduler, s in table:
        if scheduler in ("karras", "exponential", "kl_optimal") and 0.2 <= s <= 0.4:
            today, now = table[kind, mode, scheduler, s]
            assert now < 0.8 * today, (kind, mode, scheduler, s, today, now)


@pytest.mark.parametrize("ms", [eps_sampling(), flow_sampling()], ids=["eps", "flow"])
@pytest.mark.parametrize("step_mode", sm.STEP_MODES)
def test_schedulers_that_met_the_target_keep_todays_sigmas_bit_for_bit(ms, step_mode):
    for scheduler in TIME_SPACED_KEPT + ("beta", "simple", "sgm_uniform"):
        for steps in (1, 7, 20, 50):
            for s in [i / 20 for i in range(1, 21)]:
                sigma0 = sm.start_sigma(ms, s)
                now = sm.sdedit_sigmas(ms, scheduler, steps, s, sigma0, step_mode)
                today = sm.tail_schedule(ms, scheduler, steps, s, sigma0, step_mode)
                if scheduler == "beta" and step_mode == "all":  # changed only where its tail is broken
                    broken = len(today) > 2 and float(today[0] - today[1]) > schedules.BROKEN_TAIL * float(today[1] - today[2])
                    assert torch.equal(now, today) or broken
                elif scheduler in schedules.FLOORED_IN_ALL and step_mode == "all":  # changed only where it jumps to 0
                    assert torch.equal(now, today) or (schedules.floor_measured_on(ms) and schedules.jumps_to_zero(today) and s < 1)
                else:
                    assert torch.equal(now, today), (scheduler, steps, s)


@pytest.mark.parametrize("scheduler", schedules.FLOORED_IN_ALL)
def test_simple_and_sgm_uniform_move_their_grid_down_to_the_lowest_level_where_they_jump_to_zero(scheduler):
    """In "all" mode on SD1.5's table, where the tail's last step (to 0) is more than twice the one before
    it: the same levels, moved down the grid until the lowest is the model's lowest, every gap the grid's own."""
    ms = eps_sampling()
    assert schedules.floor_measured_on(ms)
    changed = 0
    for steps in (3, 4, 7, 20, 24, 50):
        for s in [0.025] + [i / 20 for i in range(1, 21)]:
            sigma0 = sm.start_sigma(ms, s)
            count, total = sm.step_plan(s, steps, "all")
            now = sm.sdedit_sigmas(ms, scheduler, steps, s, sigma0, "all")
            today = sm.tail_schedule(ms, scheduler, steps, s, sigma0, "all")
            if steps < 4 or s == 1 or not schedules.jumps_to_zero(today) or not bool((today[2:] < today[1:-1]).all()):
                assert torch.equal(now, today), (steps, s)
                if steps < 4 or s == 1 or not schedules.jumps_to_zero(today):  # the same cells with dpm_2 / uni_pc
                    assert torch.equal(sm.sdedit_sigmas(ms, scheduler, steps, s, sigma0, "all", True),
                                       sm.tail_schedule(ms, scheduler, steps, s, sigma0, "all", True)), (steps, s)
                continue
            if torch.equal(now, today):  # already at the lowest level, or moved down it would reach above sigma0
                floored = schedules.floored_schedule(ms, scheduler, count, total, sigma0)
                assert floored is None or torch.equal(floored, today)
                continue
            changed += 1
            assert len(now) == len(today) and float(now[0]) == pytest.approx(sigma0, rel=1e-6) and now[-1] == 0
            assert bool((now[1:] < now[:-1]).all()), (steps, s, now)
            if scheduler == "simple":  # entries of the model's table, the host grid's index gaps, down to entry 0
                table = ms.sigmas.float()
                index, own = (torch.searchsorted(table, levels) for levels in (now[1:-1], today[1:-1]))
                assert torch.equal(table[index], now[1:-1]) and index[-1] == 0
                assert torch.equal(index[:-1] - index[1:], own[:-1] - own[1:])
            else:  # sgm_uniform's grid with the last point it drops: the host's normal grid of total + 1 levels
                assert torch.equal(now[1:], sm.full_schedule(ms, "normal", total + 1)[-count:].float())
            # dpm_2 / uni_pc: as the host's KSampler, one step more of a one-step-longer schedule, penultimate dropped
            dp = sm.sdedit_sigmas(ms, scheduler, steps, s, sigma0, "all", discard_penultimate=True)
            longer = schedules.floored_schedule(ms, scheduler, count + 1, total + 1, sigma0)
            assert torch.equal(dp, sm.tail_schedule(ms, scheduler, steps, s, sigma0, "all", True) if longer is None
                               else torch.cat([longer[:-2], longer[-1:]])), (steps, s)
    assert changed >= 40


def other_samplings():
    """Model types other than SD1.5/SDXL's 1000-level discrete table (see floor_measured_on)."""
    from comfy_extras.nodes_model_advanced import LCM, ModelSamplingDiscreteDistilled
    ms = comfy.model_sampling
    flux = type("FluxSampling", (ms.ModelSamplingFlux, ms.CONST), {})()
    flux.set_parameters(shift=3.0)
    return {"SD3 flow": flow_sampling(), "SD3 flow, shift 8": flow_sampling(8.0),
            "LCM": type("LcmSampling", (ModelSamplingDiscreteDistilled, LCM), {})(),
            "continuous EDM": type("EdmSampling", (ms.ModelSamplingContinuousEDM, ms.EDM), {})(),
            "continuous V": type("VSampling", (ms.ModelSamplingContinuousV, ms.V_PREDICTION), {})(),
            "zero terminal SNR": type("ZsnrSampling", (ms.ModelSamplingDiscrete, ms.V_PREDICTION), {})(zsnr=True),
            "Stable Cascade": type("CascadeSampling", (ms.StableCascadeSampling, ms.EPS), {})(),
            "Flux": flux}


@pytest.mark.parametrize("name", list(other_samplings()))
def test_other_model_types_keep_the_hosts_tail_for_simple_and_sgm_uniform(name):
    ms = other_samplings()[name]
    would_jump = 0
    for scheduler in schedules.FLOORED_IN_ALL:
        for steps in (4, 7, 20, 50):
            for s in [i / 20 for i in range(1, 20)]:
                sigma0 = sm.start_sigma(ms, s)
                today = sm.tail_schedule(ms, scheduler, steps, s, sigma0, "all")
                assert torch.equal(sm.sdedit_sigmas(ms, scheduler, steps, s, sigma0, "all"), today), (steps, s)
                would_jump += schedules.jumps_to_zero(today)
    assert not schedules.floor_measured_on(ms) and would_jump > 0  # the model type is what keeps them


@pytest.mark.parametrize("ms", [eps_sampling(), flow_sampling()], ids=["eps", "flow"])
@pytest.mark.parametrize("step_mode", sm.STEP_MODES)
def test_linear_quadratic_keeps_only_its_own_levels_below_the_start(ms, step_mode):
    """Unchanged where its tail starts next to the start level; where the tail is crowded above it, the tail
    of a longer schedule that lies wholly below it (one step fewer's does not), never today's tail squeezed
    under it."""
    changed = 0
    for steps in (2, 7, 20):
        for s in [i / 20 for i in range(1, 21)]:
            sigma0 = sm.start_sigma(ms, s)
            count, total = sm.step_plan(s, steps, step_mode)
            now = sm.sdedit_sigmas(ms, "linear_quadratic", steps, s, sigma0, step_mode)
            today = sm.tail_schedule(ms, "linear_quadratic", steps, s, sigma0, step_mode)
            tail = sm.full_schedule(ms, "linear_quadratic", total)[-(count + 1):]
            if len(tail) < 2 or tail[1] < sigma0:
                assert torch.equal(now, today)
                continue
            if torch.equal(now, today):  # past the longest schedule it builds: today's tail
                assert float(sm.full_schedule(ms, "linear_quadratic", schedules.LEVELS_BELOW_MAX)[-(count + 1)]) >= sigma0
                continue
            changed += 1
            n = next(n for n in range(total + 1, schedules.LEVELS_BELOW_MAX + 1)
                     if torch.equal(now[1:], sm.full_schedule(ms, "linear_quadratic", n)[-count:].float()))
            assert len(now) == count + 1 and float(now[0]) == pytest.approx(sigma0, rel=1e-6)
            assert float(sm.full_schedule(ms, "linear_quadratic", n)[-(count + 1)]) < sigma0  # wholly below
            assert float(sm.full_schedule(ms, "linear_quadratic", n - 1)[-(count + 1)]) >= sigma0  # n is needed
    assert changed >= 10  # the high strengths, in both modes


@pytest.mark.parametrize("ms", [eps_sampling(), flow_sampling()], ids=["eps", "flow"])
@pytest.mark.parametrize("scheduler", ["karras", "exponential", "kl_optimal"])
def test_sigma_spaced_schedules_are_the_schedulers_own_formula_from_the_start_level(ms, scheduler):
    """In "all" mode (and kl_optimal in both): the formula between the start level and sigma_min."""
    handler = comfy.samplers.SCHEDULER_HANDLERS[scheduler].handler
    cases = [(10, 0.45, "all", 10)] + ([] if scheduler in ("karras", "exponential") else
                                       [(20, 0.3, "proportional", 6)])
    for steps, s, mode, count in cases:
        sigma0 = sm.start_sigma(ms, s)
        sigmas = sm.sdedit_sigmas(ms, scheduler, steps, s, sigma0, mode)
        own = handler(n=count, sigma_min=float(ms.sigma_min), sigma_max=sigma0)
        assert len(sigmas) == count + 1 and float(sigmas[0]) == pytest.approx(sigma0, rel=1e-6)
        torch.testing.assert_close(sigmas[1:], own[1:].float(), rtol=1e-6, atol=0)


@pytest.mark.parametrize("ms", [eps_sampling(), flow_sampling()], ids=["eps", "flow"])
@pytest.mark.parametrize("scheduler", ["karras", "exponential"])
def test_proportional_karras_and_exponential_keep_the_step_of_their_full_schedule(ms, scheduler):
    """From the start level down, each step is as long as a step of the full `steps`-step schedule in the
    variable the scheduler spaces evenly (log sigma; sigma^(1/7)), unless that would pass sigma_min."""
    u = {"exponential": math.log, "karras": lambda sigma: sigma ** (1 / 7)}[scheduler]
    handler = comfy.samplers.SCHEDULER_HANDLERS[scheduler].handler
    low, high = float(ms.sigma_min), float(ms.sigma_max)
    even = 0
    for steps, s in ((20, 0.2), (20, 0.3), (20, 0.7), (10, 0.5), (30, 0.9), (8, 0.95)):
        sigma0, count = sm.start_sigma(ms, s), round(s * steps)
        sigmas = [float(x) for x in sm.sdedit_sigmas(ms, scheduler, steps, s, sigma0, "proportional")]
        assert len(sigmas) == count + 1 and sigmas[-1] == 0 and sigmas[0] == pytest.approx(sigma0, rel=1e-6)
        full = [float(x) for x in handler(n=steps, sigma_min=low, sigma_max=high)]
        step = u(full[0]) - u(full[1])
        if u(sigma0) - (count - 1) * step > u(low):
            even += 1
            for a, b in zip(sigmas[:-2], sigmas[1:-1]):
                assert u(a) - u(b) == pytest.approx(step, rel=1e-3), (steps, s, sigmas)
        else:  # the even walk would pass sigma_min: laid out down to sigma_min instead
            own = handler(n=count, sigma_min=low, sigma_max=sigma0)
            torch.testing.assert_close(torch.tensor(sigmas[1:]), own[1:].float(), rtol=1e-6, atol=0)
    assert even >= 3  # at least half the cases walk evenly


@pytest.mark.parametrize("scheduler", ["karras", "kl_optimal", "beta", "linear_quadratic", "simple", "sgm_uniform"])
def test_penultimate_discarding_samplers_keep_the_step_count(scheduler):
    ms = eps_sampling()
    for s, mode, count in ((0.3, "proportional", 6), (0.15, "all", 20), (0.9, "proportional", 18)):
        sigmas = sm.sdedit_sigmas(ms, scheduler, 20, s, sm.start_sigma(ms, s), mode, discard_penultimate=True)
        assert len(sigmas) == count + 1 and float(sigmas[-1]) == 0.0
        assert bool((sigmas[1:] < sigmas[:-1]).all())


# --- the model-call minimum (counted by instrumenting the U-Net, not timed) ---------------------

@pytest.fixture(scope="module")
def chain(sd15):
    from sdedit_img2img.nodes.encode import SDEditEncode

    import nodes as host_nodes
    encode = host_nodes.CLIPTextEncode().encode
    conds = encode(sd15[1], "a red house")[0], encode(sd15[1], "blurry")[0]
    return sd15[0], conds, SDEditEncode.execute(picture(2), sd15[2])[0]


@pytest.mark.parametrize("scheduler", ["karras", "exponential", "kl_optimal", "beta", "simple", "sgm_uniform"])
@pytest.mark.parametrize("strength,step_mode,expected", [(0.15, "all", 6), (0.5, "proportional", 3)])
def test_changed_schedules_make_exactly_one_batched_call_per_step(chain, scheduler, strength, step_mode, expected):
    model, conds, latent = chain
    counted, calls = counting(model)
    sdedit(counted, conds, latent, strength, steps=6, scheduler=scheduler, step_mode=step_mode)
    assert calls == [2] * expected


def test_strength_zero_makes_no_model_call_for_any_scheduler(chain):
    model, conds, latent = chain
    counted, calls = counting(model)
    for scheduler in comfy.samplers.KSampler.SCHEDULERS:
        out = sdedit(counted, conds, latent, 0.0, scheduler=scheduler)
        assert torch.equal(out["samples"], latent["samples"])
    assert calls == []


def test_the_chain_makes_one_vae_pass_each_way_and_never_reloads_the_model(chain, sd15, monkeypatch):
    import comfy.model_patcher
    from sdedit_img2img.nodes.decode import SDEditDecode
    from sdedit_img2img.nodes.encode import SDEditEncode
    model, conds, _ = chain
    vae = sd15[2]
    seen = {"encode": 0, "decode": 0, "load": 0}

    def counted(name, function):
        def wrapper(*args, **kwargs):
            seen[name] += 1
            return function(*args, **kwargs)
        return wrapper
    monkeypatch.setattr(vae, "encode", counted("encode", vae.encode))
    monkeypatch.setattr(vae, "decode", counted("decode", vae.decode))
    monkeypatch.setattr(comfy.model_patcher.ModelPatcher, "load",
                        counted("load", comfy.model_patcher.ModelPatcher.load))
    counted_model, calls = counting(model)
    for run in range(2):
        if run == 1:
            seen.update(encode=0, decode=0, load=0)
            calls.clear()
        latent = SDEditEncode.execute(picture(3), vae)[0]
        out = sdedit(counted_model, conds, latent, 0.5, steps=4)
        SDEditDecode.execute(out, vae)
    assert seen == {"encode": 1, "decode": 1, "load": 0}
    assert calls == [2, 2]
