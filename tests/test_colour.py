"""nodes/colour.py (pure) and Decode's color_anchor on the real host runtime with the random-weight SD1.5
checkpoint: the edited part's Lab statistics matched to the input's, the kept part untouched."""
import pytest
import torch
from helpers import chain, left_keep_mask, picture
from sdedit_img2img.nodes import colour
from sdedit_img2img.nodes.add_noise import SDEditAddNoise
from sdedit_img2img.nodes.decode import SDEditDecode
from sdedit_img2img.nodes.denoise import SDEditDenoise


def test_lab_round_trips_srgb_and_knows_its_white_and_black():
    rgb = torch.rand(50, 3, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(colour.lab_to_srgb(colour.srgb_to_lab(rgb)).float(), rgb, rtol=0, atol=1e-5)
    white, black = colour.srgb_to_lab(torch.ones(3)), colour.srgb_to_lab(torch.zeros(3))
    assert white.tolist() == pytest.approx([100.0, 0.0, 0.0], abs=1e-3)
    assert black.tolist() == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)
    assert float(colour.delta_e(torch.ones(3), torch.zeros(3))) == pytest.approx(100.0, abs=1e-3)


def test_anchoring_matches_the_regions_lab_mean_and_spread_and_leaves_the_rest():
    g = torch.Generator().manual_seed(2)
    original = torch.rand(1, 16, 16, 3, generator=g) * 0.5 + 0.25
    edited = (original * 0.6 + torch.tensor([0.35, 0.1, 0.0])).clamp(0, 1)  # a warm cast, less contrast
    where = torch.zeros(1, 16, 16, dtype=torch.bool)
    where[:, :, 8:] = True
    out = colour.anchor_colour(original, edited, where, 1.0)
    assert torch.equal(out[~where], edited[~where])
    lab_out, lab_orig = colour.srgb_to_lab(out[where]), colour.srgb_to_lab(original[where])
    lab_edit = colour.srgb_to_lab(edited[where])
    # to well under a just-noticeable difference (ΔE ~1): what is left is clipping to the sRGB gamut
    torch.testing.assert_close(lab_out.mean(0), lab_orig.mean(0), rtol=0, atol=0.5)
    torch.testing.assert_close(lab_out.std(0), lab_orig.std(0), rtol=0, atol=0.5)
    assert float((lab_edit.mean(0) - lab_orig.mean(0)).norm()) > 10  # there was a drift to remove
    half = colour.anchor_colour(original, edited, where, 0.5)
    torch.testing.assert_close(colour.srgb_to_lab(half[where]).mean(0), (lab_out.mean(0) + lab_edit.mean(0)) / 2,
                               rtol=0, atol=0.2)
    assert colour.anchor_colour(original, edited, where, 0.0) is edited


def test_decode_color_anchor_off_is_the_plain_decode_on_is_anchored_and_the_keep_is_exact(model, conds, vae):
    image, mask = picture(3), left_keep_mask(40)
    _, out, plain = chain(model, conds, vae, image, mask=mask)
    assert torch.equal(SDEditDecode.execute(out, vae, color_anchor=0.0)[0], plain)
    anchored = SDEditDecode.execute(out, vae, color_anchor=1.0)[0]
    keep = mask[0] == 0
    assert torch.equal(anchored[0][keep], image[0][keep])
    edit = ~keep
    drift = float((colour.srgb_to_lab(plain[0][edit]).mean(0) - colour.srgb_to_lab(image[0][edit]).mean(0)).norm())
    left = float((colour.srgb_to_lab(anchored[0][edit]).mean(0) - colour.srgb_to_lab(image[0][edit]).mean(0)).norm())
    assert left < 0.1 * drift, f"mean ΔE of the edit {left:.3g} after, {drift:.3g} before"


def test_decode_color_anchor_without_a_mask_anchors_the_whole_picture(model, conds, vae):
    image = picture(2)
    _, out, plain = chain(model, conds, vae, image)
    anchored = SDEditDecode.execute(out, vae, color_anchor=1.0)[0]
    before = float((colour.srgb_to_lab(plain[0]).mean((0, 1)) - colour.srgb_to_lab(image[0]).mean((0, 1))).norm())
    after = float((colour.srgb_to_lab(anchored[0]).mean((0, 1)) - colour.srgb_to_lab(image[0]).mean((0, 1))).norm())
    assert after < 0.1 * before


def test_color_anchor_on_a_latent_not_from_encode_is_refused_by_name(model, conds, vae):
    latent = {"samples": vae.encode(picture(1))}
    noisy = SDEditAddNoise.execute(model, latent, 0.5, 1)[0]
    out = SDEditDenoise.execute(model, *conds, noisy, 2, 7.0, "euler", "normal", "proportional")[0]
    with pytest.raises(ValueError) as error:
        SDEditDecode.execute(out, vae, color_anchor=0.5)
    assert "'color_anchor'" in str(error.value) and "SDEdit 1 · Encode" in str(error.value)
    assert SDEditDecode.execute(out, vae)[0].shape[0] == 1
