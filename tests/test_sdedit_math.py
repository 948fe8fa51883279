"""The pure maths of SDEdit (nodes/sdedit_math.py) on the host's real model_sampling classes."""
import math
from fractions import Fraction

import comfy.model_sampling as host_ms
import comfy.samplers
import pytest
import torch
from sdedit_img2img.nodes import sdedit_math as sm
from helpers import eps_sampling, flow_sampling

STRENGTHS = [i / 20 for i in range(1, 20)]


@pytest.fixture(params=["eps", "flow"])
def model_sampling(request):
    return eps_sampling() if request.param == "eps" else flow_sampling()


def test_strength_is_the_models_own_sigma_at_that_fraction_of_time(model_sampling):
    assert sm.start_sigma(model_sampling, 0.0) == 0.0
    assert sm.start_sigma(model_sampling, 1.0) == pytest.approx(float(model_sampling.sigma_max))
    sigmas = [sm.start_sigma(model_sampling, s) for s in STRENGTHS]
    assert sigmas == [pytest.approx(model_sampling.percent_to_sigma(1 - s)) for s in STRENGTHS]
    assert all(a < b for a, b in zip(sigmas, sigmas[1:])), "more strength must mean more noise"


def test_eps_strength_maps_to_timestep_strength_times_999():
    ms = eps_sampling()
    for s in STRENGTHS:
        t = ms.timestep(torch.tensor(sm.start_sigma(ms, s)))
        assert abs(float(t) - s * 999) <= 0.5


@pytest.mark.parametrize("strength,steps,expected", [
    (0.35, 50, 18), (0.58, 25, 15), (0.5, 20, 10), (0.01, 20, 1), (0.02, 20, 1), (0.03, 20, 1),
    (1.0, 20, 20), (0.6, 20, 12), (0.24, 10, 2), (0.25, 10, 3)])
def test_proportional_step_count_rounds_halves_up(strength, steps, expected):
    assert sm.proportional_step_count(strength, steps) == expected


def test_proportional_step_count_matches_exact_decimal_rounding():
    for steps in range(1, 151):
        for i in range(1, 101):
            exact = Fraction(i, 100) * steps
            assert sm.proportional_step_count(i / 100, steps) == max(1, math.floor(exact + Fraction(1, 2)))


@pytest.mark.parametrize("scheduler", comfy.samplers.KSampler.SCHEDULERS)
@pytest.mark.parametrize("step_mode", sm.STEP_MODES)
def test_every_schedule_starts_at_the_strength_noise_level_and_only_descends(model_sampling, scheduler, step_mode):
    for steps in (1, 4, 20, 50):
        for s in STRENGTHS + [1.0]:
            sigma0 = sm.start_sigma(model_sampling, s)
            sigmas = sm.sdedit_sigmas(model_sampling, scheduler, steps, s, sigma0, step_mode)
            expected_steps = sm.proportional_step_count(s, steps) if step_mode == "proportional" else steps
            assert len(sigmas) == expected_steps + 1
            assert float(sigmas[0]) == pytest.approx(sigma0, rel=1e-6)
            assert float(sigmas[-1]) == 0.0
            assert bool((sigmas[1:] < sigmas[:-1]).all()), (scheduler, step_mode, steps, s, sigmas)


def test_proportional_is_the_tail_of_the_full_schedule():
    ms = eps_sampling()
    full = comfy.samplers.calculate_sigmas(ms, "normal", 20)
    sigmas = sm.sdedit_sigmas(ms, "normal", 20, 0.35, sm.start_sigma(ms, 0.35), "proportional")
    assert len(sigmas) == 8  # round(7.0) steps
    torch.testing.assert_close(sigmas[1:], full[-7:], rtol=0, atol=0)


def test_all_mode_is_the_hosts_denoise_tail():
    """For schedulers spaced in the model's time; sigma-spaced ones are laid out afresh (tests/test_schedule.py)."""
    ms = eps_sampling()
    ksampler_tail = comfy.samplers.calculate_sigmas(ms, "normal", int(20 / 0.4))[-21:]  # KSampler(denoise=0.4)
    sigmas = sm.sdedit_sigmas(ms, "normal", 20, 0.4, sm.start_sigma(ms, 0.4), "all")
    torch.testing.assert_close(sigmas[1:], ksampler_tail[1:], rtol=0, atol=0)


def test_strength_zero_runs_no_step(model_sampling):
    assert len(sm.sdedit_sigmas(model_sampling, "normal", 20, 0.0, 0.0, "proportional")) == 0


def test_unknown_step_mode_is_refused():
    with pytest.raises(ValueError, match="step_mode"):
        sm.sdedit_sigmas(eps_sampling(), "normal", 20, 0.5, 1.0, "half")


def vpred_sampling():  # SD2-v's: discrete schedule, v-prediction
    return type("VSampling", (host_ms.ModelSamplingDiscrete, host_ms.V_PREDICTION), {})()


@pytest.mark.parametrize("make", [eps_sampling, vpred_sampling, flow_sampling], ids=["eps", "v", "flow"])
@pytest.mark.parametrize("strength", [0.2, 0.5, 0.8])
def test_add_noise_is_the_hosts_own_noise_scaling(make, strength):
    """Below full strength the noisy latent is exactly what the model's own noise_scaling makes, so a
    host that scales noise differently (e.g. a flow model's noise_scale) is followed, not re-derived."""
    ms = make()
    g = torch.Generator().manual_seed(0)
    latent, noise = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)
    sigma = sm.start_sigma(ms, strength)
    assert 0.0 < sigma < float(ms.sigma_max)
    expected = ms.noise_scaling(torch.tensor(sigma, dtype=torch.float32), noise, latent, max_denoise=False)
    torch.testing.assert_close(sm.add_noise(ms, latent, noise, sigma), expected, rtol=0, atol=0)
    assert not torch.equal(expected, latent) and not torch.equal(expected, noise)


def test_add_noise_at_zero_is_the_latent(model_sampling):
    latent = torch.randn(1, 4, 8, 8)
    assert torch.equal(sm.add_noise(model_sampling, latent, torch.randn_like(latent), 0.0), latent)


def test_full_strength_is_pure_noise_whatever_the_latent(model_sampling):
    noise = torch.randn(1, 4, 8, 8)
    sigma = sm.start_sigma(model_sampling, 1.0)
    a = sm.add_noise(model_sampling, torch.randn(1, 4, 8, 8), noise, sigma)
    b = sm.add_noise(model_sampling, torch.full((1, 4, 8, 8), 3.0), noise, sigma)
    assert torch.equal(a, b)
    # ...and it is the host's own text-to-image start: noise_scaling of an empty latent at sigma_max
    empty = model_sampling.noise_scaling(model_sampling.sigma_max, noise, torch.zeros_like(noise), max_denoise=True)
    torch.testing.assert_close(a, empty)


def test_just_below_full_strength_the_input_still_counts():
    ms = eps_sampling()
    noise = torch.randn(1, 4, 8, 8)
    sigma = sm.start_sigma(ms, 0.99)
    a = sm.add_noise(ms, torch.zeros(1, 4, 8, 8), noise, sigma)
    b = sm.add_noise(ms, torch.ones(1, 4, 8, 8), noise, sigma)
    torch.testing.assert_close(b - a, torch.ones_like(a))
