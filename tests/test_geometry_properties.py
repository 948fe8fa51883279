"""The pack's geometry space, drawn by Hypothesis rather than hand-picked (issue #27).

Every drawn case (harness/geometry.py: picture sizes from 1 px, odd sides and extreme aspects, batches, masks
empty / full / one pixel / several parts / touching borders / grey / per picture / at another size, feather,
size_mode, crop_to_mask and its three settings, repeats, tiling against the picture, strength 0, 1 and between)
runs Encode -> (Repeat Latent Batch) -> Add Noise -> Denoise -> Decode on the host's runtime with cheap
stand-ins of the host's own classes (a small comfy.sd.VAE of factor 8, the closed-form Gaussian denoiser) and
must give either a refusal naming the node, the input and the fix, or the documented sizes with every pixel
outside the mask the input's, bit for bit. The canvas routes must say what Encode and Denoise then do.

Bounded here (SDEDIT_GEOMETRY_CASES cases, 300 by default, a quarter of it for each route; fixed seed); bench/geometry.py runs thousands.
Shrunk failures are kept as @example()s; the issue's table is its own test.
"""
import os

import nodes as host_nodes
import numpy as np
import pytest
import torch
from harness import geometry
from harness.geometry import Case, Rect
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sdedit_img2img.nodes import pictures, routes, tiles

CASES = int(os.environ.get("SDEDIT_GEOMETRY_CASES", "300"))
PROPERTY = settings(max_examples=CASES, derandomize=True, deadline=None, database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.data_too_large])
ROUTE_PROPERTY = settings(PROPERTY, max_examples=max(1, CASES // 4))


@pytest.fixture(scope="module")
def cond(sd15):
    return host_nodes.CLIPTextEncode().encode(sd15[1], "")[0]


@pytest.fixture(scope="module")
def tiny_vae():
    return geometry.tiny_vae()


def box(height, width, top, left, box_height, box_width, **settings_) -> Case:
    """One picture with one hard rectangular mask, crop_to_mask on (the issue's table)."""
    return Case(height=height, width=width, masks=((Rect(top, left, box_height, box_width, 1.0),),),
                crop_to_mask=True, **settings_)


# The issue's table: a box (mask box x crop_factor + crop_padding) taller or wider than the picture.
TALLER_THAN_THE_PICTURE = box(512, 512, 56, 56, 400, 400)                  # 664 px box in a 512 px picture
WIDER_THAN_TALL_PICTURE = box(112, 491, 5, 5, 50, 90)                      # 140 px box in a 112 px picture
TEMPLATE_SETTINGS = box(64, 96, 16, 24, 32, 48, mask_feather=8)            # sdedit_region's settings, 136 px box
# The rows that were right (crop_size 128 instead of 512 for time: the box's place does not depend on it).
FITS = [box(512, 512, 206, 206, 100, 100, crop_size=128), box(768, 1024, 334, 462, 100, 100, crop_size=128),
        box(300, 200, 0, 0, 50, 50, crop_size=256), box(300, 200, 250, 150, 50, 50, crop_size=128)]


@pytest.mark.parametrize("case", [TALLER_THAN_THE_PICTURE, WIDER_THAN_TALL_PICTURE, TEMPLATE_SETTINGS, *FITS],
                         ids=["512x512-400px-mask", "491x112-90x50-mask", "template-96x64", "fits-512",
                              "fits-1024x768", "corner-crop256", "far-corner"])
def test_the_issues_table_a_box_larger_than_the_picture_is_centred_and_stitched(case, model, cond, tiny_vae):
    """Each row gives the input's size, the kept pixels bit for bit and an edit inside the mask."""
    out = geometry.run(case, model, cond, tiny_vae)
    assert out.error is None and out.refusal is None, out.error or out.refusal
    assert geometry.violations(case, out) == []
    inside = geometry.fitted_masks(case)[0] > 0
    assert bool((out.image[0][inside] != geometry.picture(case)[0][inside]).any()), "the region was edited"


@PROPERTY
@given(case=geometry.cases())
# Shrunk failures, kept: a 1 px picture (an 8 px working size, a one-cell latent); size_mode crop of a side
# under 8 px (a raw convolution error before, now refused by name).
@example(case=Case(height=1, width=1, strength=0.0))
@example(case=Case(height=8, width=7, batch=3, masks=((Rect(70, 43, 1, 1, 0.25),),), mask_size=(96, 69), mask_feather=7,
              size_mode="crop", steps=3))
@example(case=Case(height=1, width=2650, masks=((Rect(0, 1681, 1, 1, 0.5),),), size_mode="crop", strength=1.0))
@example(case=Case(height=1, width=288, batch=2, masks=((Rect(0, 268, 1, 20, 1.0), Rect(0, 0, 1, 288, 0.98)),
                                                   (Rect(0, 0, 1, 288, 1.0),)), crop_to_mask=True, crop_size=80,
              crop_padding=900, crop_factor=1.0, tiling="on", tile_overlap=184, tile_batch=1, steps=1))
# bench/geometry.py's 2,000-case run: a grey mask at a strength whose map level is 0 ran no segment (a raw
# AttributeError in Denoise); it now runs no step, as strength 0 does.
@example(case=Case(height=286, width=15, batch=2, masks=((Rect(0, 0, 286, 15, 0.25),), (Rect(0, 0, 286, 15, 0.25),)),
              crop_to_mask=True, crop_size=64, crop_padding=0, crop_factor=1.0, tile_batch=2,
              strength=2.220446049250313e-16, steps=1, seed=504189))
def test_every_case_is_refused_by_name_or_keeps_its_size_and_its_kept_pixels(case, model, cond, tiny_vae):
    out = geometry.run(case, model, cond, tiny_vae)
    assert geometry.violations(case, out) == [], case


# --- the canvas routes say what Encode and Denoise do ------------------------------------------------------

def plain_denoise_cases():
    """Cases without crop_to_mask and with a hard mask or none: their steps are the plan's (a grey mask, or the
    grey edge mask_feather gives a hard one, adds the strength map's join levels, docs/editing.md)."""
    return geometry.cases(crop_to_mask=False).filter(
        lambda c: c.masks is None or all(r.value == 1.0 for rects in c.masks for r in rects)
        and c.mask_size is None and c.mask_feather == 0)


@ROUTE_PROPERTY
@given(case=plain_denoise_cases())
@example(case=Case(height=1, width=1, strength=1.959477998369645e-76, steps=1))  # noise level 0: no step runs
# CI's draw: several tiles, steps to run (the tile plan is a dict of its own under "tiles")
@example(case=Case(height=200, width=136, tiling="on", tile_size=64, tile_overlap=16, tile_batch=2, strength=0.6,
                   steps=3))
def test_step_plan_says_the_noise_level_the_steps_and_the_tiles_denoise_runs(case, model, cond, tiny_vae):
    out = geometry.run(case, model, cond, tiny_vae)
    assert geometry.violations(case, out) == []
    if out.refusal is not None or out.image is None:
        return
    tiling = None
    if case.tiling == "on":
        tiling = {"tile_size": case.tile_size, "tile_overlap": case.tile_overlap, "tile_batch": case.tile_batch,
                  "width": case.width, "height": case.height, "size_mode": case.size_mode}
    plan = routes.answer(case.strength, case.steps, "proportional", None, tiling)
    record = pictures.carried(out.noisy)[0]
    assert plan["sigma"] == pytest.approx(record.sigma, rel=1e-6, abs=0.0)
    rows = out.noisy["samples"].shape[0]
    if tiling is None or plan["run"] == 0:
        assert len(out.calls) == plan["run"], "one model call per euler step (cfg 1: the cond alone)"
        return
    tile = (case.tile_size or 512) // geometry.CELL
    _, _, cells_h, cells_w = out.noisy["samples"].shape
    one_tile = tile >= cells_h and tile >= cells_w
    evaluated = sum(out.calls) // rows
    told = plan["tiles"]  # the tile plan the canvas line shows: tile, overlap, tiles and calls per step
    assert (told["tiles"] == 1) == one_tile, (told, cells_h, cells_w)
    assert evaluated == plan["run"] * told["tiles"], (plan, out.calls)
    if case.tile_batch and not one_tile:
        assert len(out.calls) == plan["run"] * told["calls"], (plan, out.calls)


@pytest.fixture(scope="module")
def input_folder(tmp_path_factory):
    """The host's input folder, moved to a folder of this module's for the crop plan's files."""
    import folder_paths
    before = folder_paths.get_input_directory()
    folder = tmp_path_factory.mktemp("input")
    folder_paths.set_input_directory(str(folder))
    yield folder
    folder_paths.set_input_directory(before)


def crop_plan_cases():
    return geometry.cases(crop_to_mask=True).filter(lambda c: c.height * c.width <= 300_000)


@ROUTE_PROPERTY
@given(case=crop_plan_cases(), name=st.integers(0, 10 ** 6))
def test_crop_plan_says_the_crops_and_the_working_size_encode_makes(case, name, input_folder, tiny_vae):
    """The canvas's answer for a PNG whose alpha is the mask (Load Image's mask: 1 - alpha) against what Encode
    crops from what Load Image gives (the same files, the host's own loader)."""
    from PIL import Image
    from sdedit_img2img.nodes.encode import SDEditEncode
    mask = geometry.fitted_masks(case)
    mask = torch.zeros(1, case.height, case.width) if mask is None else mask[:1]
    rgba = torch.cat([geometry.picture(case)[0], 1.0 - mask[0, :, :, None]], dim=-1)
    file = f"geometry-{name}.png"
    Image.fromarray((rgba.numpy() * 255).round().astype(np.uint8), "RGBA").save(input_folder / file)
    plan = routes.crop_answer(file, "LoadImage", None, "alpha", case.crop_size, case.crop_padding, case.crop_factor)
    image, loaded_mask = host_nodes.LoadImage().load_image(file)[:2]
    assert plan["picture"] == [case.width, case.height]
    try:
        latent = SDEditEncode.execute(image, tiny_vae, mask=loaded_mask, mask_feather=case.mask_feather,
                                      crop_to_mask=True, crop_size=case.crop_size, crop_padding=case.crop_padding,
                                      crop_factor=case.crop_factor)[0]
    except ValueError as refusal:
        assert plan["crops"] == [], "Encode refuses an empty mask; the canvas shows no crop"
        assert "input 'mask' is empty" in str(refusal)
        return
    records = pictures.carried(latent)
    assert plan["crops"] == [[r.region.width, r.region.height] for r in records]
    assert plan["work"] == [latent["samples"].shape[-1] * geometry.CELL, latent["samples"].shape[-2] * geometry.CELL]


def test_the_tile_plan_counts_the_latent_of_each_size_mode():
    """The route's tile count follows Encode's size_mode: a 100-px picture is 13 cells padded (two 12-cell tiles
    a side), 12 cropped or resized (one)."""
    assert [tiles.plan(100, 100, 96, 0, 1, mode)["tiles"] for mode in ("pad", "crop", "resize")] == [4, 1, 1]
    assert tiles.plan(100, 100, 96, 0, 1) == tiles.plan(100, 100, 96, 0, 1, "pad"), "pad: as before"
