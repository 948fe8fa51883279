"""Encode's masked_content (nodes/masked_content.py, nodes/fill.py): what the masked part starts from, on the real
host runtime with the tiny random-weight SD1.5 checkpoint, the small SD3 (a latent shift), the host's pixel-space
VAE (no VAE round trip to hide a seam) and the small Wan 2.1 (video). `original` is today's result bit for bit;
in every mode the latent cells away from the mask are the original's bit for bit and the kept pixels come back
exact; `latent nothing` is 0 and `latent noise` N(0, 1) in the model's space; `fill` continues the background."""
import nodes as host_nodes
import pytest
import torch
from harness import families
from helpers import H, HOST_VERSION, W, STEPS, denoise, picture
from helpers import load_family as load
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
    reference = SDEditEncode.execute(image, vae, mask=mask)[0]
    reference_noisy = SDEditAddNoise.execute(model, reference, 0.6, SEED)[0]
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


# The host's pixel-space VAE came with ComfyUI 0.3.60: defined by the host's version, so a release that has it
# cannot pass without it (tools/compat.sh runs this module on every release).
if HOST_VERSION >= (0, 3, 60):
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


# --- composition: crop_to_mask, a grey mask, a video, a repeat ------------------------------------------------

@pytest.mark.parametrize("mode", ["fill", "latent nothing"])
def test_crop_to_mask_changes_only_each_crops_masked_cells(model, conds, vae, mode):
    """Two regions, two crops: each crop's cells away from its own mask are the original crop's; the picture's
    kept pixels come back exact from the stitch."""
    image = picture(2, height=96, width=128)
    mask = torch.zeros(1, 96, 128)
    mask[:, 12:30, 10:34] = 1.0
    mask[:, 60:84, 90:118] = 1.0
    crops = {"crop_to_mask": True, "crop_size": 64, "crop_padding": 8, "crop_factor": 1.2, "mask": mask}
    reference = SDEditEncode.execute(image, vae, **crops)[0]
    latent = SDEditEncode.execute(image, vae, masked_content=mode, **crops)[0]
    assert latent["samples"].shape[0] == 2
    start = SDEditAddNoise.execute(model, latent, 0.0, SEED)[0]["samples"]
    inside = torch.cat([cells_of(r.working_mask, start) for r in pictures.carried(latent)]).expand_as(start)
    assert torch.equal(start[~inside], reference["samples"][~inside])
    assert not torch.equal(start[inside], reference["samples"][inside])
    decoded = SDEditDecode.execute(denoise(model, conds, latent), vae)[0]
    keep = mask[0] == 0
    assert torch.equal(decoded[0][keep], image[0][keep])


@pytest.mark.parametrize("mode", ["fill", "latent nothing"])
def test_a_grey_mask_starts_its_grey_part_from_the_content_too(model, conds, vae, mode):
    """A strength map: the grey part joins later, from the same content as the rest of the masked part (Add
    Noise's start); away from the mask every cell is the original's, and the kept pixels come back exact."""
    image = picture(3)
    mask = object_mask()
    mask[:, 20:44, 30:46] = 0.5
    reference = SDEditEncode.execute(image, vae, mask=mask)[0]
    latent = SDEditEncode.execute(image, vae, mask=mask, masked_content=mode)[0]
    start = SDEditAddNoise.execute(model, latent, 0.0, SEED)[0]["samples"]
    noisy = SDEditAddNoise.execute(model, latent, 0.6, SEED)[0]
    inside = cells_of(mask, start).expand_as(start)
    assert torch.equal(pictures.carried(noisy)[0].start[None], start), "the grey part joins from the content"
    assert torch.equal(start[~inside], reference["samples"][~inside])
    out = SDEditDenoise.execute(model, *conds, noisy, STEPS, 5.0, "euler", "normal", "proportional")[0]
    decoded = SDEditDecode.execute(out, vae)[0]
    keep = mask[0] == 0
    assert torch.equal(decoded[0][keep], image[0][keep])


def test_a_repeated_batch_draws_its_own_noise_per_picture(model, conds, vae):
    """Repeat Latent Batch between Encode and Add Noise: every copy starts its masked part from noise of its own
    (one draw per batch entry, as the SDEdit noise), the rest of each is the original's."""
    image, mask = picture(1), object_mask()
    reference = SDEditEncode.execute(image, vae, mask=mask)[0]
    latent = SDEditEncode.execute(image, vae, mask=mask, masked_content="latent noise")[0]
    repeated = host_nodes.RepeatLatentBatch().repeat(latent, 2)[0]
    start = SDEditAddNoise.execute(model, repeated, 0.0, SEED)[0]["samples"]
    inside = cells_of(mask, start)[0].expand_as(start[0])
    assert not torch.equal(start[0][inside], start[1][inside])
    for row in start:
        assert torch.equal(row[~inside], reference["samples"][0][~inside])
    decoded = SDEditDecode.execute(denoise(model, conds, repeated), vae)[0]
    keep = mask[0] == 0
    assert decoded.shape[0] == 2 and all(torch.equal(d[keep], image[0][keep]) for d in decoded)


@pytest.fixture(scope="module")
def wan():
    return load(families.ensure_wan(), 1)


@pytest.mark.parametrize("mode,frames", [("fill", 5), ("latent nothing", 6)])
def test_a_video_changes_only_the_masked_cells_of_each_latent_frame(wan, mode, frames):
    """Per-frame masks on the Wan VAE's groups of frames (frame 0 alone, then 4 a latent frame): the box is masked
    in the last frames only, so latent frame 0 (frame 0) is the original's whole; kept pixels exact in every frame."""
    model, vae, conds = wan
    clip = torch.cat([picture(1 + f, height=32, width=48) for f in range(frames)])
    mask = torch.zeros(frames, 32, 48)
    mask[1:, 8:24, 12:36] = 1.0
    reference = SDEditEncode.execute(clip, vae, mask=mask)[0]["samples"]
    latent = SDEditEncode.execute(clip, vae, mask=mask, masked_content=mode)[0]
    start = SDEditAddNoise.execute(model, latent, 0.0, SEED)[0]["samples"]
    assert start.ndim == 5
    inside = torch.zeros_like(start, dtype=torch.bool)
    inside[:, :, 1:, 1:3, 1:5] = True  # latent frames 1.. ; rows 8-23 and columns 12-35 fall in cells 1-2, 1-4
    assert torch.equal(start[~inside], reference[~inside])
    if mode == "latent nothing":
        assert bool((model.get_model_object("latent_format").process_in(start)[inside] == 0).all())
    else:
        assert not torch.equal(start[inside], reference[inside])
    out = SDEditDenoise.execute(model, *conds, SDEditAddNoise.execute(model, latent, 0.6, SEED)[0], 4, 3.0, "euler",
                                "normal", "proportional")[0]
    decoded = SDEditDecode.execute(out, vae)[0]
    assert decoded.shape == clip.shape
    for f in range(frames):
        keep = mask[f] == 0
        assert torch.equal(decoded[f][keep], clip[f][keep]), f"frame {f}"


@pytest.mark.parametrize("mode", ["fill", "latent noise"])
def test_a_batch_with_a_mask_per_picture_changes_each_pictures_own_cells(model, vae, mode):
    image = torch.cat([picture(1), picture(2)])
    mask = torch.zeros(2, H, W)
    mask[0, 4:20, 8:40] = 1.0
    mask[1, 40:60, 56:90] = 1.0
    reference = SDEditEncode.execute(image, vae, mask=mask)[0]["samples"]
    start = SDEditAddNoise.execute(model, SDEditEncode.execute(image, vae, mask=mask, masked_content=mode)[0], 0.0,
                                   SEED)[0]["samples"]
    inside = cells_of(mask, start).expand_as(start)
    assert torch.equal(start[~inside], reference[~inside])
    for i in range(2):
        assert not torch.equal(start[i][inside[i]], reference[i][inside[i]]), f"picture {i + 1}'s own mask"
