"""Tiled denoising on the real runtime: the grid and its weights, tiled = untiled with the closed-form
Gaussian denoiser (which acts on each latent element on its own, so blending must add nothing), the model's
input never larger than a tile, the keep region across tile borders, odd latent sizes, off = the untiled result,
chaining of another node's wrapper, and Cancel between tiles."""
import comfy.model_management
import comfy.samplers
import nodes as host_nodes
import pytest
import torch
from helpers import left_keep_mask, picture
from sdedit_img2img.nodes import tiles
from sdedit_img2img.nodes.add_noise import SDEditAddNoise
from sdedit_img2img.nodes.decode import SDEditDecode
from sdedit_img2img.nodes.denoise import SDEditDenoise, SDEditDenoiseCustom
from sdedit_img2img.nodes.encode import SDEditEncode

# tile 64 px = 8 cells, overlap 16 px = 2 cells: a 20 x 27 latent gets 3 x 5 tiles, the last ones at the edges
TILED = {"tiling": "on", "tile_size": 64, "tile_overlap": 16}


def recording(model, shapes: list, hook=None):
    """A clone of `model` whose model_function_wrapper records every model input's shape (and runs `hook`)."""
    patched = model.clone()
    inner = patched.model_options.get("model_function_wrapper")

    def wrapper(apply_model, args):
        shapes.append(tuple(args["input"].shape))
        if hook is not None:
            hook(len(shapes))
        if inner is not None:
            return inner(apply_model, args)
        return apply_model(args["input"], args["timestep"], **args["c"])
    patched.set_model_unet_function_wrapper(wrapper)
    return patched


def noisy(model, height, width, strength=0.5, seed=3):
    y = torch.linspace(-2, 2, 4 * height * width).view(1, 4, height, width).sin() * 2
    return SDEditAddNoise.execute(model, {"samples": y}, strength, seed)[0]


def denoise(model, conds, latent, steps=4, sampler="euler", **tiling):
    return SDEditDenoise.execute(model, *conds, latent, steps, 2.0, sampler, "normal", "proportional", **tiling)[0]


# --- the grid and the weights ---------------------------------------------------------------------------------

@pytest.mark.parametrize("length,tile,overlap", [(27, 8, 2), (20, 8, 2), (8, 8, 2), (5, 8, 2), (64, 64, 16),
                                                 (100, 64, 16), (129, 64, 0), (9, 8, 7)])
def test_the_grid_covers_every_cell_with_equal_tiles_and_at_least_the_overlap(length, tile, overlap):
    starts = tiles.axis_starts(length, tile, overlap)
    size = min(tile, length)
    assert starts[0] == 0 and starts[-1] + size == length
    assert all(b - a <= size - overlap for a, b in zip(starts, starts[1:])), "neighbours share >= overlap"
    assert all(b > a for a, b in zip(starts, starts[1:]))
    if len(starts) > 1:  # the fewest: one tile less could not cover the axis with that overlap
        assert (len(starts) - 1) * (size - overlap) + size < length + (size - overlap)


@pytest.mark.parametrize("height,width", [(20, 27), (8, 8), (5, 30), (17, 9)])
def test_the_weights_are_a_partition_of_unity(height, width):
    grid = tiles.tile_grid(height, width, 8, 2)
    weights = tiles.blend_weights(height, width, 8, 2)
    total = torch.zeros(height, width, dtype=torch.float64)
    for (y, x, h, w), weight in zip(grid, weights):
        assert weight.shape == (h, w) and bool((weight > 0).all())
        total[y:y + h, x:x + w] += weight
    torch.testing.assert_close(total, torch.ones_like(total), rtol=0, atol=1e-12)


def test_the_weights_fall_smoothly_across_the_overlap():
    w = tiles.blend_weights(8, 14, 8, 4)[0][0]  # first tile of two along x, sharing 2..4 cells
    assert float(w[0]) == 1.0 and bool((w[1:] <= w[:-1]).all()) and float(w[-1]) < 0.2


# --- the whole chain ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sampler", ["euler", "heun", "dpmpp_2m"])
@pytest.mark.parametrize("height,width", [(20, 27), (13, 9)])
def test_tiled_equals_untiled_with_the_closed_form_denoiser(gaussian_model, empty_conds, sampler, height, width):
    latent = noisy(gaussian_model, height, width)
    shapes = []
    untiled = denoise(gaussian_model, empty_conds, latent, sampler=sampler)["samples"]
    tiled = denoise(recording(gaussian_model, shapes), empty_conds, latent, sampler=sampler, **TILED)["samples"]
    grid = tiles.tile_grid(height, width, 8, 2)
    assert len(grid) > 1
    assert shapes and all(s[-2:] == grid[0][2:] for s in shapes), "every model call sees tiles"
    assert not torch.equal(tiled, latent["samples"])
    torch.testing.assert_close(tiled, untiled, rtol=1e-5, atol=1e-5)


def test_every_model_call_is_at_most_a_tile_and_tile_batch_bounds_the_calls(model, conds):
    latent = noisy(model, 20, 27)
    shapes, steps = [], 2
    out = denoise(recording(model, shapes), conds, latent, steps=steps, **TILED, tile_batch=5)["samples"]
    untiled = denoise(model, conds, latent, steps=steps)["samples"]
    grid = tiles.tile_grid(20, 27, 8, 2)
    assert len(grid) == 15
    ran = round(0.5 * steps)
    assert len(shapes) == ran * tiles.calls_per_step(len(grid), 5) == ran * 3
    assert all(s[-2:] == (8, 8) and s[0] <= 2 * 5 for s in shapes), shapes  # cond + uncond per tile
    assert bool(torch.isfinite(out).all()) and not torch.equal(out, untiled), "the U-Net mixes neighbours"


def test_all_tiles_in_one_call_by_default(model, conds):
    shapes = []
    denoise(recording(model, shapes), conds, noisy(model, 20, 27), steps=2, **TILED)
    assert shapes == [(2 * 15, 4, 8, 8)], "memory allows all 15 tiles (cond and uncond) in one call here"


def test_tiling_off_and_a_latent_within_one_tile_are_the_untiled_result_bit_for_bit(model, conds):
    latent = noisy(model, 8, 12)
    untiled = denoise(model, conds, latent)["samples"]
    assert torch.equal(denoise(model, conds, latent, tiling="off", tile_size=64, tile_overlap=16)["samples"], untiled)
    assert torch.equal(denoise(model, conds, latent, tiling="on")["samples"], untiled), "8 x 12 < 512 px tiles"
    assert not torch.equal(denoise(model, conds, latent, **TILED)["samples"], untiled)


def test_the_keep_region_across_tile_borders_is_bit_identical(model, conds, vae):
    image = picture(1)  # 64 x 96 px: an 8 x 12 latent, tiles of 6 cells at 0, 3, 6 (x) and 0, 2 (y)
    latent = SDEditEncode.execute(image, vae, mask=left_keep_mask(48))[0]
    noised = SDEditAddNoise.execute(model, latent, 0.6, 5)[0]
    settings = {"tiling": "on", "tile_size": 48, "tile_overlap": 16}
    assert len(tiles.tile_grid(8, 12, 6, 2)) == 6
    tiled = denoise(model, conds, noised, steps=5, **settings)
    untiled = denoise(model, conds, noised, steps=5)
    assert torch.equal(tiled["samples"][..., :6], untiled["samples"][..., :6])
    assert not torch.equal(tiled["samples"][..., 6:], untiled["samples"][..., 6:])
    decoded = SDEditDecode.execute(tiled, vae)[0]
    assert torch.equal(decoded[:, :, :48], image[:, :, :48]), "keep pixels are the input's bits"


def test_custom_node_tiles_the_guider_and_leaves_the_users_guider_alone(gaussian_model, empty_conds):
    latent = noisy(gaussian_model, 20, 27)
    guider = comfy.samplers.CFGGuider(gaussian_model)
    guider.set_conds(*empty_conds)
    guider.set_cfg(1.0)
    before = guider.model_options.get("model_function_wrapper")
    sampler = comfy.samplers.sampler_object("euler")
    untiled = SDEditDenoiseCustom.execute(guider, sampler, latent, 4, "normal", "proportional")[0]["samples"]
    tiled = SDEditDenoiseCustom.execute(guider, sampler, latent, 4, "normal", "proportional", **TILED)[0]["samples"]
    assert guider.model_options.get("model_function_wrapper") is before
    assert gaussian_model.model_options.get("model_function_wrapper") is before
    torch.testing.assert_close(tiled, untiled, rtol=1e-5, atol=1e-5)
    assert torch.equal(SDEditDenoiseCustom.execute(guider, sampler, latent, 4, "normal", "proportional")[0]["samples"],
                       untiled), "untiled again after a tiled run: nothing left behind"


def test_cancel_stops_between_tiles(model, conds):
    def cancel_after_second(calls):
        if calls == 2:
            comfy.model_management.interrupt_current_processing(True)
    shapes = []
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            denoise(recording(model, shapes, cancel_after_second), conds, noisy(model, 20, 27), **TILED, tile_batch=1)
    finally:
        comfy.model_management.interrupt_current_processing(False)
    assert len(shapes) == 2, "stopped before the third tile of the first step (15 tiles a step)"


def test_bad_overlap_and_controlnet_are_refused_by_input(model, conds):
    latent = noisy(model, 20, 27)
    with pytest.raises(ValueError, match="tile_overlap"):
        denoise(model, conds, latent, tiling="on", tile_size=64, tile_overlap=64)
    with pytest.raises(ValueError, match="'tiling'"):
        denoise(model, conds, latent, tiling="yes")
    hinted = [[conds[0][0][0], {**conds[0][0][1], "control": object()}]]  # refused before the hint is read
    with pytest.raises(ValueError, match="'positive' carries a ControlNet"):
        denoise(model, (hinted, conds[1]), latent, **TILED)


def test_the_step_plan_tells_tiles_and_model_calls():
    from sdedit_img2img.nodes import routes
    query = {"strength": "0.35", "steps": "20", "tiling": "on", "tile_size": "512", "tile_overlap": "128",
             "width": "2048", "height": "1536"}
    plan = routes.answer(*routes.parse(query), routes.parse_tiling(query))
    # 256 x 192 cells, 64-cell tiles, 16-cell overlap: ceil(240 / 48) = 5 across, ceil(176 / 48) = 4 down
    assert plan["tiles"] == {"tile_px": 512, "overlap_px": 128, "tile_batch": 0, "tiles": 20, "calls": 1}
    assert plan["run"] == 7
    query.update(tile_batch="6", tile_size="0")  # 0: the model's native size (SD1.5's 512 where assumed)
    assert routes.answer(*routes.parse(query), routes.parse_tiling(query))["tiles"]["calls"] == 4
    del query["width"]
    assert "tiles" not in routes.answer(*routes.parse(query), routes.parse_tiling(query))["tiles"], "size unknown"
    assert "tiles" not in routes.answer(*routes.parse({"strength": "0.3", "steps": "20"}))
    assert "error" in tiles.plan(512, 512, 512, 512, 0)
    with pytest.raises(ValueError, match="tiling must be"):
        routes.parse_tiling({"tiling": "yes"})


def test_the_model_is_loaded_for_one_tile_and_the_users_options_stay_as_they_are(model, conds):
    import comfy.patcher_extension as pe
    executor = pe.WrapperExecutor.new_executor(lambda m, shape, c, model_options=None: shape,
                                               [tiles.tile_noise_shape(8)])
    assert executor.execute(None, (2, 4, 20, 27), {}, model_options={}) == [2, 4, 8, 8]
    assert executor.execute(None, (1, 4, 5, 30), {}, model_options={}) == [1, 4, 5, 8]
    guider = comfy.samplers.CFGGuider(model)
    guider.set_conds(*conds)
    tiled = tiles.tiled_guider("test", guider, tiles.Tiling(64, 16, 0))
    key = pe.WrappersMP.PREPARE_SAMPLING
    assert pe.get_all_wrappers(key, tiled.model_options, is_model_options=True)
    assert not pe.get_all_wrappers(key, guider.model_options, is_model_options=True)
    assert not pe.get_all_wrappers(key, model.model_options, is_model_options=True)


def test_area_conditioning_is_cropped_by_the_host_then_tiled(gaussian_model, empty_conds):
    """The host crops the input to an area cond's area before the model function; that crop is tiled where it
    is larger than a tile, and the blend adds nothing (the closed-form denoiser)."""
    area = host_nodes.ConditioningSetArea().append(empty_conds[0], 160, 120, 16, 24, 1.0)[0]  # 20 x 15 cells
    conds = (host_nodes.ConditioningCombine().combine(area, empty_conds[0])[0], empty_conds[1])
    latent = noisy(gaussian_model, 20, 27)
    shapes = []
    untiled = denoise(gaussian_model, conds, latent)["samples"]
    tiled = denoise(recording(gaussian_model, shapes), conds, latent, **TILED)["samples"]
    assert shapes and all(s[-2:] == (8, 8) for s in shapes)
    torch.testing.assert_close(tiled, untiled, rtol=1e-5, atol=1e-5)


def test_the_custom_node_refuses_a_controlnet_in_its_guider_by_input(model, conds):
    hinted = [[conds[0][0][0], {**conds[0][0][1], "control": object()}]]  # refused before the hint is read
    guider = comfy.samplers.CFGGuider(model)
    guider.set_conds(hinted, conds[1])
    sampler = comfy.samplers.sampler_object("euler")
    with pytest.raises(ValueError, match="input 'guider' carries a ControlNet"):
        SDEditDenoiseCustom.execute(guider, sampler, noisy(model, 20, 27), 4, "normal", "proportional", **TILED)
