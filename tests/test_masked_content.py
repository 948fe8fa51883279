"""Encode's masked_content (nodes/masked_content.py, nodes/fill.py): what the masked part starts from, on the real
host runtime with the tiny random-weight SD1.5 checkpoint, the small SD3 (a latent shift), the host's pixel-space
VAE (no VAE round trip to hide a seam) and the small Wan 2.1 (video). `original` is today's result bit for bit;
in every mode the latent cells away from the mask are the original's bit for bit and the kept pixels come back
exact; `latent nothing` is 0 and `latent noise` N(0, 1) in the model's space; `fill` continues the background."""
import nodes as host_nodes
import pytest
import torch
from harness import families
from helpers import H, W, STEPS, denoise, picture
from test_families import load
from sdedit_img2img.nodes import masked_content, pictures
from sdedit_img2img.nodes.add_noise import SDEditAddNoise
from sdedit_img2img.nodes.decode import SDEditDecode
from sdedit_img2img.nodes.denoise import SDEditDenoise
from sdedit_img2img.nodes.encode import SDEditEncode

MODES = masked_content.MODES
SEED = 5


def object_mask(batch=1, height=H, width=W):
    """A box off the latent grid (rows 20-43, columns 30-61): its cells are rows 2-5, columns 3-7."""
    mask = torch.zeros(batch, height, width)
    mask[:, 20:44, 30:62] = 1.0
    return mask


def cells_of(mask, latent):
    """The latent cells a pixel above 0 falls in, (b, 1, ...) bool, computed here on its own terms."""
    m = mask.reshape(-1, 1, *mask.shape[-2:]).float()
    return torch.nn.functional.max_pool2d(m, 8) > 0


def chain(model, conds, vae, image, mode, strength=0.6, seed=SEED, **encode):
    latent = SDEditEncode.execute(image, vae, masked_content=mode, **encode)[0]
    noisy = SDEditAddNoise.execute(model, latent, strength, seed)[0]
    out = SDEditDenoise.execute(model, *conds, noisy, STEPS, 5.0, "euler", "normal", "proportional")[0]
    return latent, noisy, SDEditDecode.execute(out, vae)[0]


def test_original_is_todays_latent_and_picture_bit_for_bit(model, conds, vae):
    image, mask = picture(2), object_mask()
    today = SDEditEncode.execute(image, vae, mask=mask)[0]
    ours = SDEditEncode.execute(image, vae, mask=mask, masked_content="original")[0]
    assert torch.equal(ours["samples"], today["samples"]) and torch.equal(ours["noise_mask"], today["noise_mask"])
    out_today = SDEditDecode.execute(denoise(model, conds, today), vae)[0]
    out_ours = SDEditDecode.execute(denoise(model, conds, ours), vae)[0]
    assert torch.equal(out_ours, out_today)


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_changes_only_the_masked_cells_and_keeps_the_kept_pixels(model, conds, vae, mode):
    image, mask = picture(3), object_mask()
    reference, reference_noisy, _ = chain(model, conds, vae, image, "original", mask=mask)
    latent, noisy, decoded = chain(model, conds, vae, image, mode, mask=mask)
    inside = cells_of(mask, latent["samples"]).expand_as(latent["samples"])
    start = SDEditAddNoise.execute(model, latent, 0.0, SEED)[0]["samples"]  # what the masked part starts from
    for ours, theirs in ((latent["samples"], reference["samples"]), (start, reference["samples"]),
                         (noisy["samples"], reference_noisy["samples"])):
        assert torch.equal(ours[~inside], theirs[~inside]), "cells away from the mask are the original's"
    if mode != "original":
        assert not torch.equal(start[inside], reference["samples"][inside]), "the masked part starts elsewhere"
    keep = mask[0] == 0
    assert torch.equal(decoded[0][keep], image[0][keep]), "kept pixels exact through Decode"
    record = pictures.carried(latent)[0]
    assert torch.equal(record.pixels, image[0:1]) and torch.equal(record.mask, mask), "Decode's record: the input's"


@pytest.fixture(scope="module")
def sd3():
    return load(families.ensure_sd3(), 0, pooled=2048)


@pytest.mark.parametrize("family", ["sd15", "sd3"])
def test_latent_nothing_is_the_models_zero_and_latent_noise_its_unit_noise(request, family):
    """SD1.5 scales its latent; SD3 also shifts it: both come out as 0 / N(0, 1) in the model's own space."""
    model, vae = (request.getfixturevalue("model"), request.getfixturevalue("vae")) if family == "sd15" else \
        request.getfixturevalue("sd3")[:2]
    fmt = model.get_model_object("latent_format")
    image = picture(1, height=128, width=128)
    mask = torch.zeros(1, 128, 128)
    mask[:, 16:112, 8:120] = 1.0  # 12 x 14 cells
    nothing = SDEditEncode.execute(image, vae, mask=mask, masked_content="latent nothing")[0]
    start = SDEditAddNoise.execute(model, nothing, 0.0, SEED)[0]["samples"]
    inside = cells_of(mask, start).expand_as(start)
    assert bool((fmt.process_in(start)[inside] == 0).all())
    assert float(fmt.process_in(start)[~inside].abs().mean()) > 0.01, "the rest is the picture's latent"

    noise = SDEditEncode.execute(image, vae, mask=mask, masked_content="latent noise")[0]
    starts = [fmt.process_in(SDEditAddNoise.execute(model, noise, 0.0, s)[0]["samples"])[inside] for s in (1, 2)]
    for values in starts:
        assert abs(float(values.mean())) < 0.1 and abs(float(values.std()) - 1.0) < 0.1
    assert not torch.equal(starts[0], starts[1]), "another seed, other noise"
    again = fmt.process_in(SDEditAddNoise.execute(model, noise, 0.0, 1)[0]["samples"])[inside]
    assert torch.equal(again, starts[0]), "the same seed, the same noise"


def test_latent_noise_is_a_stream_of_its_own(model, vae):
    """The SDEdit noise of the cells away from the mask does not change with the mode, and the masked part's
    noise is not the SDEdit noise of the same seed."""
    image, mask = picture(2), object_mask()
    latent = SDEditEncode.execute(image, vae, mask=mask, masked_content="latent noise")[0]
    start = SDEditAddNoise.execute(model, latent, 0.0, SEED)[0]["samples"]
    record = pictures.carried(SDEditAddNoise.execute(model, latent, 0.6, SEED)[0])[0]
    fmt = model.get_model_object("latent_format")
    inside = cells_of(mask, start)[0].expand_as(start[0])
    assert not torch.allclose(fmt.process_in(start)[0][inside], record.noise[inside].float(), atol=1e-3)


def test_fill_continues_the_background_in_pixel_space():
    """The host's pixel-space VAE: the latent is the picture, so Add Noise at strength 0 then Decode shows the
    fill itself. A busy object on a smooth background is replaced by the background's continuation."""
    pixel_vae = host_nodes.VAELoader().load_vae("pixel_space")[0]
    height, width = 64, 96
    y = torch.linspace(0, 1, height).view(height, 1)
    x = torch.linspace(0, 1, width).view(1, width)
    bg = torch.stack([0.2 + 0.5 * x + 0.2 * y, 0.6 - 0.3 * y + 0 * x, 0.4 + 0.1 * x * y], -1)[None]
    image = bg.clone()
    mask = object_mask(height=height, width=width)
    image[mask > 0] = torch.rand(int((mask > 0).sum()), 3, generator=torch.Generator().manual_seed(0))
    latent = SDEditEncode.execute(image, pixel_vae, mask=mask, masked_content="fill")[0]
    shown = SDEditDecode.execute(latent, pixel_vae)[0]  # Encode's latent is what Add Noise starts from
    hole = mask[0] > 0
    assert float((shown[0][hole] - bg[0][hole]).abs().max()) < 0.02
    assert torch.equal(shown[0][~hole], image[0][~hole])
    # No jump at the border: the step into the fill is no larger than the background's own steps.
    own = float((bg[0, :, 1:] - bg[0, :, :-1]).abs().max())
    assert float((shown[0, 20:44, 30] - shown[0, 20:44, 29]).abs().max()) <= 2 * own


def test_a_mode_without_a_mask_is_refused_by_name(vae):
    with pytest.raises(ValueError, match="SDEdit 1 · Encode: input 'masked_content' is 'fill' but input 'mask'"):
        SDEditEncode.execute(picture(1), vae, masked_content="fill")
    assert "masked_content" in SDEditEncode.validate_inputs(masked_content="noise")
    assert SDEditEncode.validate_inputs(masked_content="latent nothing") is True


def test_a_repeat_starts_from_the_last_result_not_the_mode_again(model, conds, vae):
    """Denoise -> Add Noise again (a second round): the masked part is the first round's result, so Add Noise at
    strength 0 gives it back unchanged."""
    image, mask = picture(1), object_mask()
    latent = SDEditEncode.execute(image, vae, mask=mask, masked_content="latent nothing")[0]
    first = denoise(model, conds, latent)
    again = SDEditAddNoise.execute(model, first, 0.0, SEED)[0]
    assert torch.equal(again["samples"], first["samples"])
