"""A grey mask is a strength per pixel (nodes/strength_map.py), checked against SDEdit's closed form.

The ideal denoiser of Gaussian data (harness/gaussian.py, as in tests/test_sdedit_gaussian.py) acts on each latent element on its own, so
every band of a map can be checked against the exact SDEdit answer from its own level:
mu + s (y - mu + sigma_j n) / sqrt(s^2 + sigma_j^2), sigma_j the model's level at strength m x strength.
"""
import comfy.sample
import pytest
import torch
from comfy_extras.nodes_differential_diffusion import DifferentialDiffusion
from helpers import eps_sampling, host_node, left_keep_mask, picture
from sdedit_img2img.nodes import strength_map
from sdedit_img2img.nodes.add_noise import SDEditAddNoise
from sdedit_img2img.nodes.decode import SDEditDecode
from sdedit_img2img.nodes.denoise import SDEditDenoise
from sdedit_img2img.nodes.encode import SDEditEncode
from sdedit_img2img.nodes.sdedit_math import start_sigma

from harness.gaussian import exact_answer

BANDS = [0.0, 0.25, 0.5, 0.75, 1.0]
SEED = 3


@pytest.fixture(scope="module")
def conds(empty_conds):
    return empty_conds


def banded(width_per_band=2):
    cells = torch.tensor(BANDS).repeat_interleave(width_per_band).view(1, 1, 1, -1)
    return cells.expand(1, 1, 8, cells.shape[-1]).clone()


def run(model, conds, y, mask, strength, steps=10, mode="proportional", seed=SEED):
    fmt = model.get_model_object("latent_format")
    latent = {"samples": fmt.process_out(y)}
    if mask is not None:
        latent["noise_mask"] = mask
    noisy = SDEditAddNoise.execute(model, latent, strength, seed)[0]
    out = SDEditDenoise.execute(model, *conds, noisy, steps, 1.0, "euler", "normal", mode)[0]
    return fmt.process_in(out["samples"])


def exact(model, y, level, seed=SEED):
    n = comfy.sample.prepare_noise(model.get_model_object("latent_format").process_out(y), seed)
    return exact_answer(y + level * n, level)


@pytest.mark.parametrize("steps", [10, 30])
def test_each_band_lands_on_its_own_exact_answer(gaussian_model, conds, steps):
    """Bands 0.25 .. 1 each within the discretisation error of a uniform run at that strength."""
    y, strength = torch.linspace(-2, 2, 4 * 8 * 10).view(1, 4, 8, 10), 0.8
    ms = gaussian_model.get_model_object("model_sampling")
    result = run(gaussian_model, conds, y, banded(), strength, steps)
    for b, value in enumerate(BANDS[1:], start=1):
        cells = (slice(None), slice(None), slice(None), slice(2 * b, 2 * b + 2))
        answer = exact(gaussian_model, y, start_sigma(ms, value * strength))[cells]
        uniform = run(gaussian_model, conds, y, None, value * strength, steps)[cells]
        error, own = float((result[cells] - answer).abs().max()), float((uniform - answer).abs().max())
        assert error <= 1.05 * own, f"band {value}: {error:.3g} against a uniform run's {own:.3g}"


@pytest.mark.parametrize("value", [0.25, 0.5])
@pytest.mark.parametrize("mode", ["proportional", "all"])
def test_a_constant_map_is_the_plain_chain_at_that_strength_bit_for_bit(gaussian_model, conds, value, mode):
    y = torch.linspace(-2, 2, 4 * 8 * 10).view(1, 4, 8, 10)
    mapped = run(gaussian_model, conds, y, torch.full((1, 1, 8, 10), value), 0.6, mode=mode)
    plain = run(gaussian_model, conds, y, None, value * 0.6, mode=mode)
    assert torch.equal(mapped, plain)


def test_differential_diffusion_wired_too_does_not_threshold_the_map_again(gaussian_model, conds):
    y = torch.linspace(-2, 2, 4 * 8 * 10).view(1, 4, 8, 10)
    patched = host_node(DifferentialDiffusion, gaussian_model)[0]
    assert torch.equal(run(patched, conds, y, banded(), 0.8), run(gaussian_model, conds, y, banded(), 0.8))


def test_latent_map_takes_each_cells_most_edited_pixel_and_levels_are_the_masks_own():
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 3, 3], mask[..., 8:, 8:] = 0.5, 0.25
    cells = strength_map.latent_map(mask, (2, 4, 2, 2))
    assert cells.shape == (2, 1, 2, 2)
    assert cells[0, 0].tolist() == [[0.5, 0.0], [0.0, 0.25]]
    assert strength_map.is_binary(torch.tensor([0.0, 1.0])) and not strength_map.is_binary(cells)
    schedule = strength_map.map_schedule(torch.tensor([3.0, 2.0, 1.0, 0.0]), [3.0, 1.5])
    assert schedule.tolist() == [3.0, 2.0, 1.5, 1.0, 0.0]
    parts = strength_map.segments(schedule, [3.0, 1.5])
    assert [(level, p.tolist()) for level, p in parts] == [(3.0, [3.0, 2.0, 1.5]), (1.5, [1.5, 1.0, 0.0])]


def test_grey_map_through_the_real_chain_keeps_zeros_bit_for_bit(sd15, conds):
    model, _, vae = sd15
    image = picture(2)
    mask = left_keep_mask(32) * torch.linspace(0.2, 1.0, image.shape[2]).view(1, 1, -1)  # three levels and a ramp
    latent = SDEditEncode.execute(image, vae, mask=mask)[0]
    noisy = SDEditAddNoise.execute(model, latent, 0.6, SEED)[0]
    out = SDEditDenoise.execute(model, *conds, noisy, 5, 1.0, "euler", "normal", "proportional")[0]
    decoded = SDEditDecode.execute(out, vae)[0]
    keep = mask[0] == 0
    assert torch.equal(decoded[0][keep], image[0][keep])
    raw = vae.decode(out["samples"])
    torch.testing.assert_close(decoded[0][~keep], raw[0][~keep], rtol=0, atol=1e-6)  # decoded once, not blended


def test_a_feather_ramp_joins_at_one_level_per_bin_each_part_within_half_a_bin():
    """A ramp holds a value per cell; one level per value would cost one model call each."""
    values = torch.linspace(0.003, 1.0, 300).tolist()
    joins_at = strength_map.binned(values)
    assert len(set(joins_at.values())) == strength_map.MAP_BINS
    assert max(abs(joins_at[v] - v) for v in values) <= 0.5 / strength_map.MAP_BINS + 1e-12
    assert all(joins_at[v] > 0 for v in values)  # a part to edit is never kept
    alone = [0.1, 0.25, 0.5, 0.75, 1.0]  # one value per bin: its own level, exactly
    assert strength_map.binned(alone, 10) == {v: v for v in alone}
    assert strength_map.binned([0.1, 0.25], 4) == {0.1: 0.175, 0.25: 0.175}  # one bin: its middle
    ms = eps_sampling()
    join, levels = strength_map.join_levels(ms, 0.8, torch.tensor(values).view(1, 1, 10, 30))
    assert len(levels) == strength_map.MAP_BINS
    assert strength_map.top_strength(torch.tensor(values), 0.8) == pytest.approx(0.8 * max(joins_at.values()))


def test_a_feathered_mask_at_most_doubles_the_model_calls(gaussian_model, conds):
    model, levels = gaussian_model.clone(), []
    inner = model.model_options["model_function_wrapper"]

    def watch(apply_model, args):
        levels.append(float(args["timestep"].flatten()[0]))
        return inner(apply_model, args)
    model.set_model_unet_function_wrapper(watch)
    y = torch.linspace(-2, 2, 4 * 8 * 40).view(1, 4, 8, 40)
    ramp = torch.linspace(0.0, 1.0, 40).view(1, 1, 1, -1).expand(1, 1, 8, 40).clone()
    run(model, conds, y, ramp, 0.8, steps=10)
    steps = round(10 * 0.8)
    assert steps < len(levels) <= steps + strength_map.bins_for(steps)  # 39 grey values: not 39 calls more


def flow(model):
    """The same model with SD3's rectified-flow sampling (shift 3), as ModelSamplingSD3 installs it."""
    from comfy_extras.nodes_model_advanced import ModelSamplingSD3
    return ModelSamplingSD3().patch(model, 3.0)[0]


@pytest.mark.parametrize("family", ["eps", "flow"])
@pytest.mark.parametrize("mode", ["proportional", "all"])
def test_every_band_joins_at_its_own_level_in_both_step_modes_and_families(sd15, conds, family, mode):
    """Every band's level is one the model is called at, and there its cells are the clean latent noised with
    Add Noise's noise to that level; above it they are held on that path."""
    model, seen = sd15[0].clone(), []

    def watch(apply_model, args):
        seen.append((float(args["timestep"].flatten()[0]), args["input"][:1].clone()))
        return args["input"] * 0.5  # any answer: only what the model is given is checked
    model.set_model_unet_function_wrapper(watch)
    model = flow(model) if family == "flow" else model
    ms = model.get_model_object("model_sampling")
    y, strength = torch.linspace(-2, 2, 4 * 8 * 10).view(1, 4, 8, 10), 0.7
    run(model, conds, y, banded(), strength, mode=mode)
    n = comfy.sample.prepare_noise(model.get_model_object("latent_format").process_out(y), SEED)
    for b, value in enumerate(BANDS[1:], start=1):
        level = start_sigma(ms, value * strength)
        cells = (slice(None), slice(None), slice(None), slice(2 * b, 2 * b + 2))
        at = [x for sigma, x in seen if abs(sigma - level) <= 1e-5 * level]
        assert at, f"{family} {mode}, band {value}: no model call at its level {level:.4g}"
        noised = ms.noise_scaling(torch.tensor(level), n, y)  # what Add Noise makes at that level
        torch.testing.assert_close(at[0][cells], noised[cells], rtol=1e-5, atol=1e-5)
        for sigma, x in seen:  # above its level a band is held on the clean latent's noised path
            if sigma > level * (1 + 1e-5):
                torch.testing.assert_close(x[cells], ms.noise_scaling(torch.tensor(sigma), n, y)[cells],
                                           rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", ["eps", "flow"])
def test_a_constant_map_through_two_repeats_is_the_plain_chain_twice(gaussian_model, conds, family):
    model = flow(gaussian_model) if family == "flow" else gaussian_model
    fmt = model.get_model_object("latent_format")
    y = torch.linspace(-2, 2, 4 * 8 * 10).view(1, 4, 8, 10)

    def twice(mask, strength):
        latent = {"samples": fmt.process_out(y)}
        if mask is not None:
            latent["noise_mask"] = mask
        for seed in (1, 2):
            noisy = SDEditAddNoise.execute(model, latent, strength, seed)[0]
            latent = SDEditDenoise.execute(model, *conds, noisy, 10, 1.0, "euler", "normal", "proportional")[0]
        return latent["samples"]
    assert torch.equal(twice(torch.full((1, 1, 8, 10), 0.5), 0.6), twice(None, 0.3))
