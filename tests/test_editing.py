"""Masked edits, repeats (the paper's K) and any image size, on the real host runtime with the tiny
random-weight SD1.5 checkpoint; the pure geometry and mask maths are tested alongside."""
import comfy.sample
import comfy.samplers
import pytest
import torch
from sdedit_img2img.nodes import masking, pictures
from sdedit_img2img.nodes import image_size as isz
from sdedit_img2img.nodes import sdedit_math as sm
from sdedit_img2img.nodes.add_noise import SDEditAddNoise
from sdedit_img2img.nodes.decode import SDEditDecode
from sdedit_img2img.nodes.denoise import ContinueFromNoisyLatent, SDEditSampler
from sdedit_img2img.nodes.encode import SDEditEncode
from test_nodes import H, W, picture

import nodes as host_nodes

STEPS, STRENGTH, SEED = 5, 0.6, 5  # three steps run


@pytest.fixture(scope="module")
def model(sd15):
    return sd15[0]


@pytest.fixture(scope="module")
def vae(sd15):
    return sd15[2]


@pytest.fixture(scope="module")
def conds(sd15):
    encode = host_nodes.CLIPTextEncode().encode
    return encode(sd15[1], "photo of a green apple")[0], encode(sd15[1], "blurry")[0]


def left_keep_mask(keep_columns=48, batch=1):
    """0 (keep) on the left `keep_columns` pixels, 1 (edit) on the right: block-aligned to the latent."""
    mask = torch.ones(batch, H, W)
    mask[:, :, :keep_columns] = 0.0
    return mask


def denoise(model, conds, latent, strength=STRENGTH, seed=SEED, steps=STEPS, sampler_name="euler"):
    noisy = SDEditAddNoise.execute(model, latent, strength, seed)[0]
    return SDEditSampler.execute(model, *conds, noisy, steps, 5.0, sampler_name, "normal", "proportional")[0]


def chain(model, conds, vae, image, **encode):
    latent = SDEditEncode.execute(image, vae, **encode)[0]
    out = denoise(model, conds, latent)
    return latent, out, SDEditDecode.execute(out, vae)[0]


# --- pure maths -------------------------------------------------------------------------------------

@pytest.mark.parametrize("h,w,mode,work,offset", [
    (67, 45, "pad", (72, 48), (2, 1)),
    (9, 7, "pad", (16, 8), (3, 0)),
    (8, 8, "pad", (8, 8), (0, 0)),
    (67, 45, "crop", (64, 40), (1, 2)),
    (67, 45, "resize", (64, 48), (0, 0)),
    (9, 7, "resize", (8, 8), (0, 0)),
])
def test_geometry_of_each_size_mode(h, w, mode, work, offset):
    g = isz.plan(h, w, 8, mode)
    assert (g.work_height, g.work_width) == work and (g.top, g.left) == offset
    image = torch.rand(2, h, w, 3)
    working = isz.to_working(image, g)
    if mode == "crop":
        assert working is image  # the host VAE crops, as it always has
        return
    assert working.shape == (2, *work, 3)
    back = isz.from_working(working, g)
    assert back.shape == image.shape
    if mode == "pad":
        assert torch.equal(back, image), "padding is undone exactly"
        assert torch.equal(working[:, :g.top, g.left:g.left + w], image[:, :1].expand(2, g.top, w, 3))


def test_crop_geometry_is_the_host_vaes_own_crop(vae):
    image = torch.rand(1, 67, 45, 3)
    g = isz.plan(67, 45, 8, "crop")
    host = vae.vae_encode_crop_pixels(image)
    assert torch.equal(isz.to_output_frame(image, g), host)


def test_feather_ramps_inside_the_mask_and_never_touches_the_keep_region():
    mask = torch.zeros(1, 20, 40)
    mask[:, :, 20:] = 1.0
    soft = masking.feather(mask, 4)
    assert torch.equal(soft[:, :, :20], mask[:, :, :20])
    assert soft[0, 10, 20:25].tolist() == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])
    assert torch.equal(masking.feather(mask, 0), mask)


def test_fit_mask_resizes_broadcasts_and_refuses_other_batches():
    assert masking.fit_mask(torch.ones(32, 48), 2, 64, 96, "N", "mask").shape == (1, 64, 96)
    assert masking.fit_mask(torch.ones(2, 64, 96), 2, 64, 96, "N", "mask").shape == (2, 64, 96)
    with pytest.raises(ValueError) as error:
        masking.fit_mask(torch.ones(3, 64, 96), 2, 64, 96, "SDEdit 1 · Encode", "mask")
    assert "SDEdit 1 · Encode" in str(error.value) and "'mask'" in str(error.value) and "3 masks" in str(error.value)


def test_composite_keeps_the_original_bits_where_the_mask_is_zero():
    original, edited = torch.rand(1, 4, 4, 3), torch.rand(1, 4, 4, 3)
    mask = torch.tensor([0.0, 0.25, 1.0, 0.0]).view(1, 1, 4).expand(1, 4, 4)
    out = masking.composite(original, edited, mask)
    assert torch.equal(out[:, :, 0], original[:, :, 0]) and torch.equal(out[:, :, 3], original[:, :, 3])
    torch.testing.assert_close(out[:, :, 1], 0.75 * original[:, :, 1] + 0.25 * edited[:, :, 1])
    torch.testing.assert_close(out[:, :, 2], edited[:, :, 2])


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


# --- masked edits ------------------------------------------------------------------------------------

def test_masked_edit_keeps_pixels_changes_the_edit_region_and_blends_the_feather_band(model, conds, vae):
    image, feather = picture(3), 12
    _, out, decoded = chain(model, conds, vae, image, mask=left_keep_mask(40), mask_feather=feather)
    weight = masking.feather(left_keep_mask(40), feather)[0]
    keep, band, edit = weight == 0, (weight > 0) & (weight < 1), weight == 1
    assert torch.equal(decoded[0][keep], image[0][keep]), "keep pixels are bit-identical"
    assert (decoded[0][edit] - image[0][edit]).abs().mean() > 0.02, "the edit region follows the model"
    raw = vae.decode(out["samples"])
    torch.testing.assert_close(decoded[0][band], (image + weight[..., None] * (raw - image))[0][band])
    assert band.sum() == H * (feather - 1)


def test_the_keep_region_is_renoised_with_add_noises_noise_at_every_step(model, conds, vae):
    image = picture(1)
    latent = SDEditEncode.execute(image, vae, mask=left_keep_mask(48))[0]
    inputs = []
    watched = model.clone()

    def wrapper(apply_model, args):
        inputs.append(args["input"][0].clone())
        return apply_model(args["input"], args["timestep"], **args["c"])
    watched.set_model_unet_function_wrapper(wrapper)
    out = denoise(watched, conds, latent)
    ms = model.get_model_object("model_sampling")
    fmt = model.get_model_object("latent_format")
    sigmas = sm.sdedit_sigmas(ms, "normal", STEPS, STRENGTH, sm.start_sigma(ms, STRENGTH))
    noise = comfy.sample.prepare_noise(latent["samples"], SEED)[0]
    clean = fmt.process_in(latent["samples"])[0]
    assert len(inputs) == len(sigmas) - 1 == 3
    for step, (x, sigma) in enumerate(zip(inputs, sigmas[:-1])):  # the wrapper sees x before c_in scaling
        expected = clean + sigma * noise
        torch.testing.assert_close(x[:, :, :6], expected[:, :, :6], rtol=1e-4, atol=1e-4,
                                   msg=f"step {step}: the keep region is the clean latent noised to the step's level")
        if step > 0:
            assert not torch.allclose(x[:, :, 6:], expected[:, :, 6:], atol=1e-2), "the edit region follows the model"
    torch.testing.assert_close(out["samples"][..., :6], latent["samples"][..., :6], rtol=1e-4, atol=1e-4)


def test_the_hosts_set_latent_noise_mask_is_honoured(model, conds, vae):
    image = picture(2)
    latent = SDEditEncode.execute(image, vae)[0]
    masked = host_nodes.SetLatentNoiseMask().set_mask(latent, left_keep_mask(48))[0]
    out = denoise(model, conds, masked)
    torch.testing.assert_close(out["samples"][..., :6], latent["samples"][..., :6], rtol=1e-4, atol=1e-4)
    unmasked = denoise(model, conds, latent)
    assert not torch.allclose(out["samples"][..., 6:], unmasked["samples"][..., 6:])
    decoded = SDEditDecode.execute(out, vae)[0]
    assert torch.equal(decoded[:, :, :48], image[:, :, :48])


def test_a_mask_of_another_size_is_resized_and_one_mask_serves_a_batch(model, conds, vae):
    images = torch.cat([picture(1), picture(4)])
    small = torch.zeros(1, H // 2, W // 2)
    small[:, :, W // 4:] = 1.0
    latent, _, decoded = chain(model, conds, vae, images, mask=small)
    assert latent["noise_mask"].shape == (1, 1, H, W)
    assert torch.equal(decoded[:, :, :40], images[:, :, :40])
    with pytest.raises(ValueError) as error:
        SDEditEncode.execute(images, vae, mask=torch.ones(3, H, W))
    assert "SDEdit 1 · Encode" in str(error.value) and "'mask'" in str(error.value)


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
        assert torch.equal(pictures.carried(noisy)[0].clean, latent["samples"][0]), "the keep region is always the original"
        current = SDEditSampler.execute(model, *conds, noisy, STEPS, 5.0, "euler", "normal", "proportional")[0]
        results.append(current["samples"])
    assert not torch.allclose(results[1][..., 6:], results[2][..., 6:])
    torch.testing.assert_close(current["samples"][..., :6], latent["samples"][..., :6], rtol=1e-4, atol=1e-4)
    decoded = SDEditDecode.execute(current, vae)[0]
    keep = masking.feather(left_keep_mask(48), 4)[0] == 0
    assert torch.equal(decoded[0][keep], image[0][keep])


# --- any size -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["pad", "resize"])
@pytest.mark.parametrize("shape", [(1, 67, 45), (1, 9, 7), (1, 8, 8), (2, 21, 30)])
def test_any_size_round_trips_to_the_inputs_size(model, conds, vae, mode, shape):
    image = torch.rand(*shape, 3)
    latent = SDEditEncode.execute(image, vae, size_mode=mode)[0]
    g = isz.plan(shape[1], shape[2], 8, mode)
    assert latent["samples"].shape == (shape[0], 4, g.work_height // 8, g.work_width // 8)
    out = denoise(model, conds, latent, steps=2)
    decoded = SDEditDecode.execute(out, vae)[0]
    assert decoded.shape == image.shape and torch.isfinite(decoded).all()


def test_crop_is_todays_behaviour(model, conds, vae):
    image = torch.rand(1, 67, 45, 3)
    latent = SDEditEncode.execute(image, vae, size_mode="crop")[0]
    assert torch.equal(latent["samples"], vae.encode(image))
    decoded = SDEditDecode.execute(latent, vae)[0]
    assert torch.equal(decoded, vae.decode(latent["samples"]))
    assert decoded.shape == (1, 64, 40, 3)


def test_a_masked_edit_of_an_odd_sized_image_keeps_its_pixels(model, conds, vae):
    image = torch.rand(1, 67, 45, 3)
    mask = torch.zeros(1, 67, 45)
    mask[:, 30:, 20:] = 1.0
    for mode in ("pad", "resize", "crop"):
        _, _, decoded = chain(model, conds, vae, image, mask=mask, size_mode=mode)
        g = isz.plan(67, 45, 8, mode)
        source, keep = isz.to_output_frame(image, g), isz.to_output_frame(mask, g)[0] == 0
        assert decoded.shape == (1, *g.out_size, 3)
        assert torch.equal(decoded[0][keep], source[0][keep]), mode


# --- the sampler set up as the host sets it (issue 11) ------------------------------------------------

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
    ours = SDEditSampler.execute(model, *conds, noisy, steps, cfg, sampler_name, "normal", "proportional")[0]
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
    masked = host_nodes.SetLatentNoiseMask().set_mask(latent, masking.feather(left_keep_mask(40), 8))[0]
    assert parity(model, conds, masked, sampler_name, 0.6) <= 1e-5
