"""SDEdit checked against its closed form, on the host's real samplers.

For Gaussian data x0 ~ N(mu, s^2 I) the ideal denoiser is D(x, sigma) = mu + s^2 / (s^2 + sigma^2) (x - mu),
and the probability-flow ODE from sigma0 to 0 maps x to mu + s / sqrt(s^2 + sigma0^2) (x - mu). So SDEdit
of an input y with noise n must give  mu + s (y - mu + sigma0 n) / sqrt(s^2 + sigma0^2):  the noise level,
the noising, the continuation from the noisy latent and the end at sigma 0 are all in that number.
The ideal denoiser (harness/gaussian.py) replaces the U-Net through the host's own model_function_wrapper.
"""
import comfy.sample
import pytest
import torch
from sdedit_img2img.nodes import pictures
from sdedit_img2img.nodes.add_noise import SDEditAddNoise
from sdedit_img2img.nodes.denoise import SDEditDenoise

from harness.gaussian import MU, TAU, exact_answer



@pytest.fixture(scope="module")
def conds(empty_conds):
    return empty_conds


@pytest.mark.parametrize("strength", [0.2, 0.5, 0.8])
@pytest.mark.parametrize("sampler_name,steps,tolerance", [("euler", 120, 1.5e-2), ("heun", 30, 2e-3),
                                                         ("dpmpp_2m", 120, 5e-3)])
def test_sdedit_lands_where_the_probability_flow_ode_says(gaussian_model, conds, strength, sampler_name, steps,
                                                          tolerance):
    """The ODE solvers' discretisation error is the only gap ("normal" spaces steps in the model's time)."""
    fmt = gaussian_model.get_model_object("latent_format")
    y = torch.linspace(-2, 2, 4 * 8 * 12).view(1, 4, 8, 12)  # the input, in the model's latent space
    latent = {"samples": fmt.process_out(y)}
    seed = 3
    noisy = SDEditAddNoise.execute(gaussian_model, latent, strength, seed)[0]
    sigma0 = pictures.carried(noisy)[0].sigma
    out = SDEditDenoise.execute(gaussian_model, *conds, noisy, steps, 1.0, sampler_name, "normal", "all")[0]

    n = comfy.sample.prepare_noise(latent["samples"], seed)
    expected = exact_answer(y + sigma0 * n, sigma0)
    result = fmt.process_in(out["samples"])
    assert float((result - expected).abs().max()) < tolerance * float(expected.abs().max())

    # The pull towards the data is the SDEdit trade-off: more strength, less of the input left.
    kept = TAU / (TAU ** 2 + sigma0 ** 2) ** 0.5
    slope = float(((result - MU) * (y - MU)).sum() / ((y - MU) ** 2).sum())
    assert slope == pytest.approx(kept, rel=0.05)
