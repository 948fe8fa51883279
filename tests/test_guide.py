"""nodes/guide.py: what travels in the LATENT from Encode; repeats (the paper's K) keep the original guide,
on the real host runtime with the tiny random-weight SD1.5 checkpoint."""
import comfy.sample
import comfy.samplers
import torch
from sdedit_img2img.nodes import guide, masking
from sdedit_img2img.nodes import sdedit_math as sm
from sdedit_img2img.nodes.add_noise import SDEditAddNoise
from sdedit_img2img.nodes.decode import SDEditDecode
from sdedit_img2img.nodes.denoise import ContinueFromNoisyLatent, SDEditSampler
from sdedit_img2img.nodes.encode import SDEditEncode
from helpers import SEED, STEPS, STRENGTH, left_keep_mask, picture


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


# --- repeats (the paper's K) --------------------------------------------------------------------------

def test_three_repeats_renoise_the_current_result_and_keep_the_original_guide(model, conds, vae):
    image = picture(5)
    latent = SDEditEncode.execute(image, vae, mask=left_keep_mask(48), mask_feather=4)[0]
    fmt = model.get_model_object("latent_format")
    ms = model.get_model_object("model_sampling")
    current, results = latent, []
    for k in range(3):
        noisy = SDEditAddNoise.execute(model, current, STRENGTH, SEED + k)[0]
        noise = comfy.sample.prepare_noise(current["samples"], SEED + k)
        expected = sm.add_noise(ms, fmt.process_in(current["samples"]), noise, sm.start_sigma(ms, STRENGTH))
        torch.testing.assert_close(fmt.process_in(noisy["samples"]), expected, rtol=1e-4, atol=1e-4,
                                   msg=f"round {k + 1} re-noises the current result")
        assert guide.read(noisy)["latent"] is latent["samples"], "the guide is always the original"
        current = SDEditSampler.execute(model, *conds, noisy, STEPS, 5.0, "euler", "normal", "proportional")[0]
        results.append(current["samples"])
    assert not torch.allclose(results[1][..., 6:], results[2][..., 6:])
    torch.testing.assert_close(current["samples"][..., :6], latent["samples"][..., :6], rtol=1e-4, atol=1e-4)
    decoded = SDEditDecode.execute(current, vae)[0]
    keep = masking.feather(left_keep_mask(48), 4)[0] == 0
    assert torch.equal(decoded[0][keep], image[0][keep])
