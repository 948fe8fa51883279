"""Encode's crop_to_mask (nodes/regions.py): each masked region plus its context is cut out, scaled to the
working size, edited by the plain chain and stitched back; the rest of the picture is the input, bit for bit.
On the real host runtime with the tiny random-weight SD1.5 checkpoint."""
import pytest
import torch
from comfy_extras.nodes_latent import LatentBatch  # noqa: F401  (the host's batch nodes exist in this runtime)
from sdedit_img2img.nodes import regions
from sdedit_img2img.nodes.add_noise import SDEditAddNoise
from sdedit_img2img.nodes.decode import SDEditDecode
from sdedit_img2img.nodes.denoise import SDEditDenoise
from sdedit_img2img.nodes.encode import SDEditEncode
from sdedit_img2img.nodes.image_size import to_working
from helpers import picture

import nodes as host_nodes

STRENGTH, SEED, STEPS = 0.5, 3, 3


def boxes_mask(height, width, *boxes, batch=1):
    """MASK (batch, height, width): 1 inside each (top, left, bottom, right) box."""
    mask = torch.zeros(batch, height, width)
    for top, left, bottom, right in boxes:
        mask[:, top:bottom, left:right] = 1.0
    return mask


def recording(model):
    """A clone of `model` that records the latent shape of every model call."""
    shapes = []
    patched = model.clone()

    def wrapper(apply_model, args):
        shapes.append(tuple(args["input"].shape))
        return apply_model(args["input"], args["timestep"], **args["c"])
    patched.set_model_unet_function_wrapper(wrapper)
    return patched, shapes


def run(model, conds, vae, image, mask, **crop):
    latent = SDEditEncode.execute(image, vae, mask=mask, crop_to_mask=True, **crop)[0]
    noisy = SDEditAddNoise.execute(model, latent, STRENGTH, SEED)[0]
    out = SDEditDenoise.execute(model, *conds, noisy, STEPS, 5.0, "euler", "normal", "proportional")[0]
    return latent, out, SDEditDecode.execute(out, vae)[0]


def outside_is_input(decoded, image, mask):
    keep = (mask == 0).expand(image.shape[0], *mask.shape[1:])
    return torch.equal(decoded[keep], image[keep])


# --- the rules, as pure maths -----------------------------------------------------------------------------

def test_separate_parts_are_regions_and_overlapping_contexts_merge():
    far = boxes_mask(300, 400, (20, 20, 60, 60), (200, 300, 260, 380))
    work, (found,) = regions.regions_of_batch(far[:, :, :], ["a"], 1.0, 16, 256, 8)
    assert len(found) == 2
    assert [r.index for r, _ in found] == [0, 1]
    own0, own1 = found[0][1], found[1][1]
    assert own0[30, 30] == 1 and own0[230, 340] == 0 and own1[230, 340] == 1, "each crop edits its own part only"
    near = boxes_mask(300, 400, (20, 20, 60, 60), (20, 90, 60, 130))  # 30 px apart: contexts of 16 px overlap
    _, (merged,) = regions.regions_of_batch(near, ["a"], 1.0, 16, 256, 8)
    assert len(merged) == 1
    region = merged[0][0]
    assert region.left <= 20 - 16 and region.left + region.width >= 130 + 16
    _, (apart,) = regions.regions_of_batch(near, ["a"], 1.0, 4, 256, 8)  # contexts of 4 px do not meet
    assert len(apart) == 2


def test_one_working_size_with_the_largest_regions_aspect_and_boxes_widened_to_it():
    mask = boxes_mask(600, 800, (100, 100, 200, 300), (400, 600, 440, 640))  # 2:1 and 1:1
    (h, w), (found,) = regions.regions_of_batch(mask, ["a"], 1.0, 0, 512, 8)
    assert (h, w) == (256, 512), "long side 512, the larger region's aspect 2:1, multiples of 8"
    for region, _ in found:
        assert abs(region.width / region.height - 2.0) < 0.05, "every box widened to the working aspect"
    small = found[1][0]
    assert small.height >= 40 and small.width >= 40, "widened, never cut"


def test_a_box_at_the_border_moves_inside_and_one_larger_than_the_picture_is_centred():
    mask = boxes_mask(200, 300, (0, 0, 30, 30))
    _, [[(region, _)]] = regions.regions_of_batch(mask, ["a"], 1.0, 20, 128, 8)
    assert region.top == 0 and region.left == 0, "moved inside the picture"
    whole = boxes_mask(100, 100, (0, 0, 100, 100))
    _, [[(big, _)]] = regions.regions_of_batch(whole, ["a"], 1.0, 10, 128, 8)
    assert big.top < 0 and big.left < 0 and big.top + big.height > 100, "larger than the picture: centred on it"
    crop = regions.cut(picture(1, height=100, width=100), big)
    assert crop.shape[1:3] == (big.height, big.width)
    assert torch.equal(crop[0, 0, 0], picture(1, height=100, width=100)[0, 0, 0]), "the edge replicated"


# --- the chain on the real runtime -------------------------------------------------------------------------

def test_the_model_sees_the_working_size_and_the_rest_is_the_input_bit_for_bit(model, conds, vae):
    image = picture(2, height=1535, width=2047)
    mask = boxes_mask(1535, 2047, (700, 1000, 828, 1128))  # 128 x 128
    recorder, shapes = recording(model)
    latent, out, decoded = run(recorder, conds, vae, image, mask, crop_size=256, crop_padding=32, crop_factor=1.0)
    assert latent["samples"].shape[-2:] == (32, 32), "a square region: 256 x 256 pixels, 32 x 32 latent cells"
    assert shapes and all(s[-2:] == (32, 32) for s in shapes), shapes
    assert decoded.shape == image.shape
    assert outside_is_input(decoded, image, mask)
    inside = mask[0] > 0
    assert (decoded[0][inside] - image[0][inside]).abs().mean() > 0.01, "the masked part is edited"


def test_a_region_at_the_border_and_one_larger_than_the_working_size(model, conds, vae):
    image = picture(3, height=301, width=419)
    mask = boxes_mask(301, 419, (0, 0, 40, 50), (150, 200, 301, 419))  # touches two borders; ~220 px > 64
    latent, _, decoded = run(model, conds, vae, image, mask, crop_size=64, crop_padding=8, crop_factor=1.0)
    assert latent["samples"].shape[0] == 2 and latent["samples"].shape[-1] * 8 == 64
    assert outside_is_input(decoded, image, mask)
    for region in (mask[0, :40, :50] > 0, mask[0, 150:, 200:] > 0):
        assert region.any()
    assert (decoded[0, 150:, 200:] - image[0, 150:, 200:]).abs().mean() > 0.01, "the scaled-down region is edited"


def test_two_regions_run_as_one_batch_and_repeats_stitch_each_picture(model, conds, vae):
    image = picture(1, height=400, width=600)
    mask = boxes_mask(400, 600, (50, 50, 110, 110), (250, 420, 330, 500))
    recorder, shapes = recording(model)
    latent, out, decoded = run(recorder, conds, vae, image, mask, crop_size=128, crop_padding=16)
    assert latent["samples"].shape[0] == 2
    assert shapes and all(s[0] == 4 for s in shapes), \
        "both crops, cond and uncond, in one model call per step"
    assert decoded.shape[0] == 1, "one picture back, both regions stitched into it"
    assert outside_is_input(decoded, image, mask)
    repeated = host_nodes.RepeatLatentBatch().repeat(out, 2)[0]
    twice = SDEditDecode.execute(repeated, vae)[0]
    assert twice.shape[0] == 2 and torch.equal(twice[0], decoded[0]) and torch.equal(twice[1], decoded[0])


def test_a_batch_of_two_pictures_with_their_own_masks(model, conds, vae):
    image = torch.cat([picture(1, height=200, width=240), picture(4, height=200, width=240)])
    mask = torch.cat([boxes_mask(200, 240, (20, 20, 60, 60)),
                      boxes_mask(200, 240, (120, 150, 180, 230), (10, 180, 40, 230))])
    latent, _, decoded = run(model, conds, vae, image, mask, crop_size=64, crop_padding=8)
    assert latent["samples"].shape[0] == 3, "one crop for the first picture, two for the second"
    assert decoded.shape[0] == 2
    assert outside_is_input(decoded, image, mask)
    for i in range(2):
        inside = mask[i] > 0
        assert (decoded[i][inside] - image[i][inside]).abs().mean() > 0.01


def test_inside_the_region_it_is_the_plain_chain_on_the_crop_scaled_the_same_way(model, conds, vae):
    image = picture(5, height=300, width=333)
    mask = boxes_mask(300, 333, (100, 120, 170, 200))
    latent, out, _ = run(model, conds, vae, image, mask, crop_size=96, crop_padding=12, crop_factor=1.2)
    record = latent["sdedit_pictures"][0]
    scaled = to_working(regions.cut(image, record.region), record.geometry).contiguous()  # as Encode batches it
    plain = SDEditEncode.execute(scaled, vae, mask=record.working_mask[:, 0])[0]
    assert torch.equal(plain["samples"], latent["samples"])
    noisy = SDEditAddNoise.execute(model, plain, STRENGTH, SEED)[0]
    plain_out = SDEditDenoise.execute(model, *conds, noisy, STEPS, 5.0, "euler", "normal", "proportional")[0]
    assert torch.equal(plain_out["samples"], out["samples"])


def test_a_feathered_mask_keeps_its_zeros_and_blends_the_seam(model, conds, vae):
    image = picture(2, height=256, width=256)
    mask = boxes_mask(256, 256, (80, 80, 176, 176))
    latent = SDEditEncode.execute(image, vae, mask=mask, mask_feather=12, crop_to_mask=True, crop_size=128)[0]
    noisy = SDEditAddNoise.execute(model, latent, STRENGTH, SEED)[0]
    out = SDEditDenoise.execute(model, *conds, noisy, STEPS, 5.0, "euler", "normal", "proportional")[0]
    decoded = SDEditDecode.execute(out, vae)[0]
    assert outside_is_input(decoded, image, mask)
    edge = (decoded[0, 80:176, 80] - image[0, 80:176, 80]).abs().mean()
    centre = (decoded[0, 80:176, 128] - image[0, 80:176, 128]).abs().mean()
    assert edge < centre, "the edit fades in from the mask's edge"


@pytest.mark.parametrize("mask, words", [
    (None, "input 'mask' is not connected"),
    (torch.zeros(1, 64, 96), "input 'mask' is empty for picture 1"),
])
def test_no_region_to_crop_is_a_clear_message(vae, mask, words):
    with pytest.raises(ValueError, match="crop_to_mask") as error:
        SDEditEncode.execute(picture(1), vae, mask=mask, crop_to_mask=True)
    assert words in str(error.value) and "Fix:" in str(error.value)


@pytest.mark.parametrize("factor, padding", [(10.0, 4096), (1.0, 4096), (10.0, 3776), (1.5, 32)])
def test_a_crop_above_the_vaes_pixel_limit_is_refused_by_its_inputs(vae, factor, padding):
    """Around a 64-px mask a crop is 64 x factor + 2 x padding px a side: refused above 8192 px square (the VAE
    passes' limit) before gigabytes of repeated edge are cut, by the widgets that made it; at the limit and at the
    defaults it is planned (Encode is run only where that is cheap: cutting 8192 px square takes 0.8 GB)."""
    from sdedit_img2img.nodes import encode, regions
    side = round(64 * factor) + 2 * padding
    mask = torch.ones(1, 64, 96)
    mask[..., 64:] = 0.0  # a 64 x 64 box
    _, found = regions.regions_of_batch(mask, ["0"], factor, padding, 512, 8)
    [(region, _)] = found[0]
    assert (region.height, region.width) == (side, side)
    problem = encode.crop_too_large([region], factor, padding)
    assert (problem is not None) == (side * side > 8192 * 8192)
    if problem is not None:
        with pytest.raises(ValueError) as error:
            SDEditEncode.execute(picture(1), vae, mask=mask, crop_to_mask=True, crop_factor=factor,
                                 crop_padding=padding)
        words = str(error.value)
        assert words == problem and f"'crop_factor' ({factor:g})" in words and f"({padding} px)" in words
        assert f"{side}x{side} px" in words and "Fix: lower crop_factor or crop_padding" in words
    elif side <= 1024:
        out = SDEditEncode.execute(picture(1), vae, mask=mask, crop_to_mask=True, crop_factor=factor,
                                   crop_padding=padding)[0]
        assert out["sdedit_pictures"][0].region.height == side


def test_crop_to_mask_off_is_the_plain_masked_encode(model, conds, vae):
    image, mask = picture(1), boxes_mask(64, 96, (10, 10, 40, 50))
    plain = SDEditEncode.execute(image, vae, mask=mask)[0]
    off = SDEditEncode.execute(image, vae, mask=mask, crop_to_mask=False, crop_size=128)[0]
    assert torch.equal(plain["samples"], off["samples"]) and torch.equal(plain["noise_mask"], off["noise_mask"])
    assert all(r.region is None for r in off["sdedit_pictures"])


def test_the_canvas_route_answers_with_encodes_own_crops(vae, tmp_path):
    import shutil

    import folder_paths
    from conftest import REPO
    from sdedit_img2img.nodes import routes
    for name in ("sdedit_region.png", "sdedit_region_mask.png"):
        shutil.copy(REPO / "example_workflows" / "input" / name, tmp_path / name)
    before = folder_paths.get_input_directory()
    folder_paths.set_input_directory(str(tmp_path))
    try:
        plan = routes.crop_answer("sdedit_region.png", "LoadImageMask", "sdedit_region_mask.png", "red", 384, 20, 1.2)
        image = host_nodes.LoadImage().load_image("sdedit_region.png")[0]
        mask = host_nodes.LoadImageMask().load_image("sdedit_region_mask.png", "red")[0]
        with pytest.raises(ValueError, match="not in the input folder"):
            routes.crop_answer("missing.png", "LoadImage", None, "alpha", 512, 32, 1.5)
        with pytest.raises(ValueError) as too_large:  # the line says what Run would say
            routes.crop_answer("sdedit_region.png", "LoadImageMask", "sdedit_region_mask.png", "red", 384, 4096, 10.0)
    finally:
        folder_paths.set_input_directory(before)
    latent = SDEditEncode.execute(image, vae, mask=mask, crop_to_mask=True, crop_size=384, crop_padding=20,
                                  crop_factor=1.2)[0]
    assert plan["crops"] == [[r.region.width, r.region.height] for r in latent["sdedit_pictures"]]
    assert plan["work"] == [latent["samples"].shape[-1] * 8, latent["samples"].shape[-2] * 8]
    with pytest.raises(ValueError) as refused:
        SDEditEncode.execute(image, vae, mask=mask, crop_to_mask=True, crop_size=384, crop_padding=4096,
                             crop_factor=10.0)
    assert str(too_large.value) == str(refused.value) and "Fix: lower crop_factor" in str(refused.value)


def test_a_crop_picked_from_the_batch_is_stitched_alone_and_a_later_noise_mask_is_refused(model, conds, vae):
    image = picture(1, height=400, width=600)
    mask = boxes_mask(400, 600, (50, 50, 110, 110), (250, 420, 330, 500))
    _, out, decoded = run(model, conds, vae, image, mask, crop_size=128, crop_padding=16)
    second = host_nodes.LatentFromBatch().frombatch(out, 1, 1)[0]
    alone = SDEditDecode.execute(second, vae)[0]
    first_region, second_region = mask[0, :200] > 0, mask[0, 200:] > 0
    assert torch.equal(alone[0, :200][first_region], image[0, :200][first_region]), "the other crop is not there"
    assert outside_is_input(alone, image, mask)
    # As in the whole batch, but for the VAE's rounding of a batch of one against two (2e-6), which the
    # host's Lanczos (comfy.utils.lanczos: 8-bit, through Pillow) can move by one level.
    assert (alone[0, 200:] - decoded[0, 200:]).abs().max() <= 1 / 255 + 1e-6
    assert (alone[0, 200:][second_region] - image[0, 200:][second_region]).abs().mean() > 0.01
    masked = host_nodes.SetLatentNoiseMask().set_mask(out, torch.ones(1, 400, 600))[0]
    with pytest.raises(ValueError, match="noise mask set since Encode.*Fix: give the mask to Encode"):
        SDEditDecode.execute(masked, vae)
