"""The Denoise node's sampler continuing from a noisy latent (nodes/engine.py, ContinueFromNoisyLatent): no mask gives
today's result bit for bit, and every host sampler matches the host's own, on the real host runtime with the tiny
random-weight SD1.5 checkpoint. Masks: tests/test_masking.py; repeats and batches: tests/test_pictures.py; sizes:
tests/test_image_size.py."""
import comfy.sample
import comfy.samplers
import pytest
import torch
from sdedit_img2img.nodes import sdedit_math as sm
from sdedit_img2img.nodes.add_noise import SDEditAddNoise
from sdedit_img2img.nodes.denoise import SDEditDenoise
from sdedit_img2img.nodes.engine import ContinueFromNoisyLatent
from sdedit_img2img.nodes.encode import SDEditEncode
from helpers import SEED, STEPS, STRENGTH, chain, left_keep_mask, picture

import nodes as host_nodes

# --- no mask: today's result ------------------------------------------------------------------------

class TodaysSampler(ContinueFromNoisyLatent):
    """The sampler as it was before masks: the noisy latent as the guider's latent, zero noise, no mask."""

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False):
        extra_args["denoise_mask"] = None
        model_k = comfy.samplers.KSamplerX0Inpaint(model_wrap, sigmas)
        x = self.sampler_function(model_k, latent_image, sigmas, extra_args=extra_args, callback=None,
                                  disable=True, **self.extra_options)
        return model_wrap.inner_model.model_sampling.inverse_noise_scaling(sigmas[-1], x)


def test_no_mask_is_todays_result_bit_for_bit(model, conds, vae):
    image = picture(2)
    latent, out, decoded = chain(model, conds, vae, image)
    assert torch.equal(latent["samples"], vae.encode(image)), "pad on a multiple of 8 changes nothing"
    noisy = SDEditAddNoise.execute(model, {"samples": vae.encode(image)}, STRENGTH, SEED)[0]
    ms = model.get_model_object("model_sampling")
    sigmas = sm.sdedit_sigmas(ms, "normal", STEPS, STRENGTH, sm.start_sigma(ms, STRENGTH))
    host = comfy.samplers.sampler_object("euler")
    guider = comfy.samplers.CFGGuider(model)
    guider.set_conds(*conds)
    guider.set_cfg(5.0)
    today = guider.sample(torch.zeros_like(noisy["samples"]), noisy["samples"],
                          TodaysSampler(host.sampler_function, host.extra_options, host.inpaint_options, None),
                          sigmas, seed=SEED, disable_pbar=True)
    assert torch.equal(out["samples"], today)
    assert torch.equal(decoded, vae.decode(today))


# --- the sampler set up as the host sets it ----------------------------------------------------------

# max relative difference to SamplerCustomAdvanced, measured over every sampler (4-step schedule,
# strength 0.5, cfg 5): all are at most 4.5e-6 except heun (1.1e-5: its second model call compounds
# the rounding of Add Noise's VAE-space round trip).
PARITY_TOLERANCE = {"heun": 2e-5}
SLOW = {"dpm_adaptive": 0.1}  # adaptive step control: hundreds of model calls at strength 0.5 on CPU


def host_sampler_custom_advanced(model, conds, latent, sigmas, seed, cfg, sampler_name):
    from comfy_extras.nodes_custom_sampler import CFGGuider, KSamplerSelect, RandomNoise, SamplerCustomAdvanced
    noise = RandomNoise().get_noise(seed)[0]
    guider = CFGGuider().get_guider(model, conds[0], conds[1], cfg)[0]
    sampler = KSamplerSelect().get_sampler(sampler_name)[0]
    return SamplerCustomAdvanced().sample(noise, guider, sampler, sigmas, latent)[0]


def parity(model, conds, latent, sampler_name, strength, seed=42, steps=4, cfg=5.0):
    noisy = SDEditAddNoise.execute(model, latent, strength, seed)[0]
    ours = SDEditDenoise.execute(model, *conds, noisy, steps, cfg, sampler_name, "normal", "proportional")[0]
    ms = model.get_model_object("model_sampling")
    sigmas = sm.sdedit_sigmas(ms, "normal", steps, strength, sm.start_sigma(ms, strength), "proportional",
                              sampler_name in comfy.samplers.KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS)
    host = host_sampler_custom_advanced(model, conds, latent, sigmas, seed, cfg, sampler_name)
    return float((ours["samples"] - host["samples"]).abs().max() / host["samples"].abs().max())


@pytest.mark.parametrize("sampler_name", comfy.samplers.KSampler.SAMPLERS)
def test_every_host_sampler_matches_sampler_custom_advanced(model, conds, vae, sampler_name):
    latent = SDEditEncode.execute(picture(1), vae)[0]
    diff = parity(model, conds, latent, sampler_name, SLOW.get(sampler_name, 0.5))
    assert diff <= PARITY_TOLERANCE.get(sampler_name, 1e-5)


@pytest.mark.parametrize("sampler_name", ["euler", "euler_ancestral", "dpmpp_2m_sde", "uni_pc"])
def test_a_masked_run_matches_the_hosts_own_inpainting(model, conds, vae, sampler_name):
    """The host's SamplerCustomAdvanced on a latent with a noise_mask: same clean latent, noise and mask."""
    latent = SDEditEncode.execute(picture(2), vae)[0]
    masked = host_nodes.SetLatentNoiseMask().set_mask(latent, left_keep_mask(40))[0]  # binary: the host's blend
    assert parity(model, conds, masked, sampler_name, 0.6) <= 1e-5
