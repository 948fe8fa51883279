"""SDEdit 3 · Denoise (Custom) with the host's GUIDER and SAMPLER nodes, on the real runtime: bit for bit the
plain Denoise with CFGGuider + KSamplerSelect, and the host's SamplerCustomAdvanced over the same sigmas with
DualCFGGuider, PerpNegGuider and SamplerEulerAncestral(eta 0.5), with and without a mask."""
import comfy.samplers
import pytest
import torch
from comfy_extras.nodes_custom_sampler import (CFGGuider, DualCFGGuider, KSamplerSelect, RandomNoise,
                                               SamplerCustomAdvanced, SamplerEulerAncestral)
from comfy_extras.nodes_perpneg import PerpNegGuider
from helpers import host_node
from sdedit_img2img.nodes import sdedit_math as sm
from sdedit_img2img.nodes.add_noise import SDEditAddNoise
from sdedit_img2img.nodes.denoise import SDEditDenoise, SDEditDenoiseCustom
from sdedit_img2img.nodes.encode import SDEditEncode

import nodes as host_nodes

H, W = 64, 64
STEPS, STRENGTH, SEED, CFG = 6, 0.6, 3, 5.0


@pytest.fixture(scope="module")
def conds(sd15):
    encode = host_nodes.CLIPTextEncode().encode
    return (encode(sd15[1], "a lighthouse")[0], encode(sd15[1], "blurry")[0], encode(sd15[1], "")[0],
            encode(sd15[1], "oil painting")[0])


@pytest.fixture(scope="module", params=["no mask", "mask"])
def latent(request, sd15):
    y, x = torch.meshgrid(torch.linspace(0, 1, H), torch.linspace(0, 1, W), indexing="ij")
    picture = torch.stack([x, y, (x + y) / 2], -1)[None]
    mask = None
    if request.param == "mask":
        mask = torch.ones(1, H, W)
        mask[:, :, :24] = 0.0
    return SDEditEncode.execute(picture, sd15[2], mask=mask)[0]


def custom(guider, sampler, noisy, scheduler="normal", step_mode="proportional"):
    return SDEditDenoiseCustom.execute(guider, sampler, noisy, STEPS, scheduler, step_mode)


@pytest.mark.parametrize("sampler_name,scheduler,step_mode", [
    ("euler", "normal", "proportional"), ("euler_ancestral", "karras", "all"), ("dpm_2", "simple", "all"),
    ("dpmpp_2m_sde", "exponential", "proportional")])
def test_cfg_guider_and_ksampler_select_give_bit_for_bit_what_denoise_gives(model, conds, latent, sampler_name,
                                                                             scheduler, step_mode):
    noisy = SDEditAddNoise.execute(model, latent, STRENGTH, SEED)[0]
    plain_out, plain_trajectory = SDEditDenoise.execute(model, conds[0], conds[1], noisy, STEPS, CFG, sampler_name,
                                                        scheduler, step_mode)
    guider = CFGGuider().get_guider(model, conds[0], conds[1], CFG)[0]
    sampler = KSamplerSelect().get_sampler(sampler_name)[0]
    out, trajectory, sigmas = custom(guider, sampler, noisy, scheduler, step_mode)
    assert torch.equal(out["samples"], plain_out["samples"])
    assert torch.equal(trajectory["samples"], plain_trajectory["samples"])
    ms = model.get_model_object("model_sampling")
    discard = sampler_name in comfy.samplers.KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS
    expected = sm.sdedit_sigmas(ms, scheduler, STEPS, STRENGTH, sm.start_sigma(ms, STRENGTH), step_mode, discard)
    assert torch.equal(sigmas, expected), "the schedule that ran, as SIGMAS"


def host_chain(guider, sampler, sigmas, latent):
    """The host's own custom sampling: SamplerCustomAdvanced noises the latent itself (RandomNoise) and masks
    by its noise_mask."""
    return SamplerCustomAdvanced().sample(RandomNoise().get_noise(SEED)[0], guider, sampler, sigmas, latent)[0]


def guiders(model, conds):
    positive, negative, empty, style = conds
    return {
        "DualCFGGuider": DualCFGGuider().get_guider(model, positive, style, negative, CFG, 2.0, "regular")[0],
        "PerpNegGuider": host_node(PerpNegGuider, model, positive, negative, empty, CFG, 1.0)[0],
        "CFGGuider": CFGGuider().get_guider(model, positive, negative, CFG)[0],
    }


@pytest.mark.parametrize("guider_name", ["DualCFGGuider", "PerpNegGuider", "CFGGuider"])
@pytest.mark.parametrize("sampler_kind", ["euler", "euler_ancestral eta 0.5"])
def test_any_guider_and_sampler_equal_the_hosts_sampler_custom_advanced(model, conds, latent, guider_name,
                                                                        sampler_kind):
    guider = guiders(model, conds)[guider_name]
    if sampler_kind == "euler":
        sampler = KSamplerSelect().get_sampler("euler")[0]
    else:
        sampler = SamplerEulerAncestral().get_sampler(0.5, 1.0)[0]
    noisy = SDEditAddNoise.execute(model, latent, STRENGTH, SEED)[0]
    out, _, sigmas = custom(guider, sampler, noisy)
    host = host_chain(guider, sampler, sigmas, latent)
    # The pack noises in the VAE's space and the host in the model's: a float32 round trip through the latent
    # format's scale, which two guidance scales (DualCFG) amplify to ~5e-5 at most (measured).
    torch.testing.assert_close(out["samples"], host["samples"], rtol=1e-4, atol=1e-4)
    if "noise_mask" in latent:
        torch.testing.assert_close(out["samples"][..., :3], latent["samples"][..., :3], rtol=1e-4, atol=1e-4,
                                   msg="the keep region comes back as the input's latent")


def test_ancestral_noise_is_seeded_by_add_noise_not_zero(model, conds, latent):
    guider = CFGGuider().get_guider(model, conds[0], conds[1], CFG)[0]
    sampler = SamplerEulerAncestral().get_sampler(1.0, 1.0)[0]
    a = custom(guider, sampler, SDEditAddNoise.execute(model, latent, STRENGTH, 10)[0])[0]["samples"]
    b = custom(guider, sampler, SDEditAddNoise.execute(model, latent, STRENGTH, 11)[0])[0]["samples"]
    assert not torch.allclose(a, b)


def test_a_sampler_that_cannot_continue_from_a_noisy_latent_is_refused_by_name(model, conds, latent):
    class OtherSampler(comfy.samplers.Sampler):
        def sample(self, *args, **kwargs):
            raise AssertionError("never runs")
    guider = CFGGuider().get_guider(model, conds[0], conds[1], CFG)[0]
    noisy = SDEditAddNoise.execute(model, latent, STRENGTH, SEED)[0]
    with pytest.raises(ValueError) as error:
        custom(guider, OtherSampler(), noisy)
    assert "SDEdit 3 · Denoise (Custom)" in str(error.value) and "'sampler'" in str(error.value)
    assert "KSamplerSelect" in str(error.value)


def test_strength_zero_returns_the_latent_and_no_sigmas(model, conds, latent):
    guider = CFGGuider().get_guider(model, conds[0], conds[1], CFG)[0]
    noisy = SDEditAddNoise.execute(model, latent, 0.0, SEED)[0]
    out, trajectory, sigmas = custom(guider, KSamplerSelect().get_sampler("euler")[0], noisy)
    assert torch.equal(out["samples"], latent["samples"]) and torch.equal(trajectory["samples"], latent["samples"])
    assert sigmas.numel() == 0
