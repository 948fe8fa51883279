"""nodes/masking.py: feather, fit and composite (pure), and masked edits through the nodes on the real host
runtime with the tiny random-weight SD1.5 checkpoint."""
import comfy.sample
import comfy.samplers
import pytest
import torch
from sdedit_img2img.nodes import masking
from sdedit_img2img.nodes import sdedit_math as sm
from sdedit_img2img.nodes.decode import SDEditDecode
from sdedit_img2img.nodes.encode import SDEditEncode
from helpers import H, SEED, STEPS, STRENGTH, W, chain, denoise, left_keep_mask, picture

import nodes as host_nodes

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


def test_composite_keeps_the_original_bits_where_the_mask_is_zero_and_never_blends_twice():
    original, edited = torch.rand(1, 4, 4, 3), torch.rand(1, 4, 4, 3)
    mask = torch.tensor([0.0, 0.25, 1.0, 0.0]).view(1, 1, 4).expand(1, 4, 4)
    out = masking.composite(original, edited, mask)
    assert torch.equal(out[:, :, 0], original[:, :, 0]) and torch.equal(out[:, :, 3], original[:, :, 3])
    # a grey value is a strength, applied while denoising: the decoded pixels as they are
    torch.testing.assert_close(out[:, :, 1], edited[:, :, 1], rtol=0, atol=1e-7)
    assert torch.equal(out[:, :, 2], original[:, :, 2] + (edited[:, :, 2] - original[:, :, 2]))


# --- masked edits ------------------------------------------------------------------------------------

def test_masked_edit_keeps_pixels_changes_the_edit_region_and_decodes_the_feather_band_once(model, conds, vae):
    image, feather = picture(3), 12
    _, out, decoded = chain(model, conds, vae, image, mask=left_keep_mask(40), mask_feather=feather)
    weight = masking.feather(left_keep_mask(40), feather)[0]
    keep, band, edit = weight == 0, (weight > 0) & (weight < 1), weight == 1
    assert torch.equal(decoded[0][keep], image[0][keep]), "keep pixels are bit-identical"
    assert (decoded[0][edit] - image[0][edit]).abs().mean() > 0.02, "the edit region follows the model"
    raw = vae.decode(out["samples"])
    torch.testing.assert_close(decoded[0][band], raw[0][band], rtol=0, atol=1e-6)  # no second blend
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
