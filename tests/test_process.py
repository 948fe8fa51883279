"""Seeing the process: the Denoise node's `trajectory` output and the strength sweep, on the real host
runtime with the tiny random-weight SD1.5 checkpoint."""
import math

import comfy.samplers
import comfy.utils
import numpy as np
import pytest
import torch
from comfy_extras.nodes_custom_sampler import CFGGuider, KSamplerSelect, RandomNoise, SamplerCustomAdvanced
from sdedit_img2img.nodes import pictures
from sdedit_img2img.nodes import sdedit_math as sm
from sdedit_img2img.nodes import sweep_math
from sdedit_img2img.nodes.add_noise import SDEditAddNoise
from sdedit_img2img.nodes.decode import SDEditDecode
from sdedit_img2img.nodes.denoise import SDEditDenoise
from sdedit_img2img.nodes.encode import SDEditEncode
from sdedit_img2img.nodes.sweep import GAP, SDEditStrengthSweep
from helpers import H, W, picture

SWEEP = "SDEdit · Strength Sweep"


@pytest.fixture(scope="module")
def clean_latent(vae):
    return SDEditEncode.execute(picture(1), vae)[0]


def denoise(model, conds, latent, strength, seed=7, steps=8, cfg=7.0, sampler_name="euler", scheduler="normal",
            step_mode="proportional"):
    """(latent, trajectory) of Add Noise → Denoise."""
    noisy = SDEditAddNoise.execute(model, latent, strength, seed)[0]
    return SDEditDenoise.execute(model, conds[0], conds[1], noisy, steps, cfg, sampler_name, scheduler,
                                 step_mode).args


def max_rel_diff(a, b):
    return float((a - b).abs().max() / b.abs().max())


# --- trajectory ---------------------------------------------------------------------------------

@pytest.mark.parametrize("strength,steps,step_mode", [(0.5, 8, "proportional"), (0.3, 5, "all")])
def test_trajectory_holds_one_prediction_per_step_recorded_by_the_hosts_post_cfg_hook(
        model, conds, clean_latent, strength, steps, step_mode):
    """Every entry is the guided clean-latent prediction of its step, as the host itself reports it
    (sampler_post_cfg_function sees the CFG-combined x0; euler calls the model once per step)."""
    seen = []
    hooked = model.clone()
    hooked.set_model_sampler_post_cfg_function(lambda args: seen.append(args["denoised"].clone()) or args["denoised"])
    out, trajectory = denoise(hooked, conds, clean_latent, strength, steps=steps, step_mode=step_mode)
    expected_steps = sm.proportional_step_count(strength, steps) if step_mode == "proportional" else steps
    assert trajectory["samples"].shape == (expected_steps, 4, H // 8, W // 8)
    assert len(seen) == expected_steps
    fmt = model.get_model_object("latent_format")
    torch.testing.assert_close(trajectory["samples"], fmt.process_out(torch.cat(seen)), rtol=0, atol=0)
    assert [r.sigma for r in pictures.carried(trajectory)] == [None] * expected_steps, \
        "each step carries its picture's record (denoised), as the result does"
    # The predictions move: the first step's guess is not the last.
    assert max_rel_diff(trajectory["samples"][0], trajectory["samples"][-1]) > 1e-3


@pytest.mark.parametrize("sampler_name,tolerance", [
    ("euler_ancestral", 0.0), ("heun", 0.0), ("dpmpp_2m", 0.0), ("lms", 0.0),  # the last step returns x0 itself
    ("euler", 1e-6), ("ddim", 1e-6), ("dpm_2", 1e-6),  # x + (x0 - x)/sigma * sigma: float rounding only
    ("uni_pc", 1e-2),  # UniPC's last update blends earlier predictions into the result
])
def test_the_last_prediction_is_the_result(model, conds, clean_latent, sampler_name, tolerance):
    out, trajectory = denoise(model, conds, clean_latent, 0.5, steps=6, sampler_name=sampler_name)
    last = trajectory["samples"][-1:]
    if tolerance == 0.0:
        assert torch.equal(last, out["samples"])
    else:
        assert max_rel_diff(last, out["samples"]) <= tolerance


@pytest.mark.parametrize("sampler_name", ["euler", "dpmpp_2m"])
def test_every_step_of_the_trajectory_decodes_like_the_result(model, conds, vae, sampler_name):
    """A 90x60 picture (padded to 96x64 for the VAE) with its left half kept: Decode brings every step back to
    90x60 with the kept pixels the input's, the last step as the result. Before, only the entry equal to the
    result (bit for bit with dpmpp_2m and euler here) was cropped, and Decode refused the mixed sizes."""
    image = picture(1)[:, :60, :90]
    mask = torch.ones(1, 60, 90)
    mask[:, :, :40] = 0.0
    latent = SDEditEncode.execute(image, vae, mask=mask)[0]
    out, trajectory = denoise(model, conds, latent, 0.5, steps=6, sampler_name=sampler_name)
    frames = SDEditDecode.execute(trajectory, vae)[0]
    steps = trajectory["samples"].shape[0]
    assert frames.shape == (steps, 60, 90, 3)
    assert all(torch.equal(frames[s, :, :40], image[0, :, :40]) for s in range(steps)), "kept pixels every step"
    assert float((frames[0, :, 40:] - frames[-1, :, 40:]).abs().mean()) > 1e-3, "the steps differ"
    torch.testing.assert_close(frames[-1:], SDEditDecode.execute(out, vae)[0], rtol=0, atol=1e-5)


def test_the_last_prediction_equals_the_hosts_own_denoised_output(model, conds, clean_latent):
    """SamplerCustomAdvanced's second output is the host's x0 of the last step: the same as ours."""
    seed, steps, cfg, strength = 42, 8, 5.0, 0.5
    _, trajectory = denoise(model, conds, clean_latent, strength, seed, steps, cfg, "dpmpp_2m", "karras")
    ms = model.get_model_object("model_sampling")
    sigmas = sm.sdedit_sigmas(ms, "karras", steps, strength, sm.start_sigma(ms, strength), "proportional")
    guider = CFGGuider().get_guider(model, conds[0], conds[1], cfg)[0]
    host = SamplerCustomAdvanced().sample(RandomNoise().get_noise(seed)[0], guider,
                                          KSamplerSelect().get_sampler("dpmpp_2m")[0], sigmas, clean_latent)
    assert max_rel_diff(trajectory["samples"][-1:], host[1]["samples"]) <= 1e-5


def test_batch_trajectory_is_step_major(model, conds, vae):
    """Two images, k steps: entry s*2 + b is step s of image b, so the last two are the two results."""
    latent = SDEditEncode.execute(torch.cat([picture(1), picture(4)]), vae)[0]
    out, trajectory = denoise(model, conds, latent, 0.5, steps=6, sampler_name="euler_ancestral")
    k = sm.proportional_step_count(0.5, 6)
    samples = trajectory["samples"]
    assert samples.shape[0] == 2 * k
    assert torch.equal(samples[-2:], out["samples"])
    for step in range(k):  # each step's pair is nearer its own image's result than the other's
        for b in range(2):
            own = (samples[2 * step + b] - out["samples"][b]).abs().mean()
            other = (samples[2 * step + b] - out["samples"][1 - b]).abs().mean()
            assert own < other


def test_strength_zero_trajectory_is_the_input_latent_once(model, conds, clean_latent):
    out, trajectory = denoise(model, conds, clean_latent, 0.0)
    assert torch.equal(trajectory["samples"], clean_latent["samples"])
    assert torch.equal(out["samples"], clean_latent["samples"])


def test_decoding_the_trajectory_gives_one_picture_per_step(model, conds, clean_latent, vae):
    _, trajectory = denoise(model, conds, clean_latent, 0.5, steps=4)
    pictures = SDEditDecode.execute(trajectory, vae)[0]
    assert pictures.shape == (2, H, W, 3)


# --- the sweep's pure parts -----------------------------------------------------------------------

def test_parse_strengths_accepts_commas_spaces_and_semicolons():
    assert sweep_math.parse_strengths("0.2, 0.4 0.6;0.8") == [0.2, 0.4, 0.6, 0.8]
    assert sweep_math.parse_strengths(" 1 ,0, .5 ") == [1.0, 0.0, 0.5]


@pytest.mark.parametrize("text,words", [
    ("", ["empty"]), (" , ", ["empty"]), ("0.2, abc", ["'abc'", "not a number"]),
    ("0.2, 1.5", ["1.5", "outside 0..1"]), ("-0.1", ["-0.1"]), ("nan", ["nan", "outside"]),
    (", ".join(["0.5"] * 65), ["65", "at most 64"]),
])
def test_parse_strengths_rejects_bad_lists_naming_the_item(text, words):
    with pytest.raises(ValueError) as error:
        sweep_math.parse_strengths(text)
    assert all(word in str(error.value) for word in words), str(error.value)


@pytest.mark.parametrize("count,shape", [(1, (1, 1)), (4, (1, 4)), (5, (2, 3)), (6, (2, 3)), (8, (2, 4)),
                                         (9, (3, 3)), (13, (4, 4))])
def test_grid_shape_fills_rows_evenly(count, shape):
    assert sweep_math.grid_shape(count) == shape


def test_tile_origins_leave_gaps_and_bands_and_never_overlap():
    (height, width), origins = sweep_math.tile_origins(5, 10, 20, band=6, gap=2)
    assert (height, width) == (2 + 2 * (16 + 2), 2 + 3 * (20 + 2))
    assert origins == [(8, 2), (8, 24), (8, 46), (26, 2), (26, 24)]


def numpy_psnr_and_mad(result: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """Independent: per-channel sums in 8-bit units, then 20 log10(peak) - 10 log10(MSE)."""
    a = result[..., :3].astype(np.float64) * 255.0
    b = reference[..., :3].astype(np.float64) * 255.0
    n = a.size
    mse = sum(float(((a[..., c] - b[..., c]) ** 2).sum()) for c in range(3)) / n
    mad = sum(float(np.abs(a[..., c] - b[..., c]).sum()) for c in range(3)) / n
    return (math.inf if mse == 0 else 20 * math.log10(255.0) - 10 * math.log10(mse)), mad


def test_metrics_equal_an_independent_numpy_computation():
    gen = torch.Generator().manual_seed(3)
    a, b = torch.rand(1, 9, 7, 4, generator=gen), torch.rand(1, 9, 7, 4, generator=gen)
    mse, mad = sweep_math.squared_and_absolute_error(a, b)
    ref_psnr, ref_mad = numpy_psnr_and_mad(a.numpy(), b.numpy())
    assert sweep_math.psnr(mse) == pytest.approx(ref_psnr, rel=1e-12)
    assert mad == pytest.approx(ref_mad, rel=1e-12)
    assert sweep_math.psnr(sweep_math.squared_and_absolute_error(a, a)[0]) == math.inf
    # A uniform shift of one 8-bit level: MAD 1, PSNR 20 log10(255) dB.
    mse, mad = sweep_math.squared_and_absolute_error(b[..., :3] + 1 / 255, b[..., :3])
    assert mad == pytest.approx(1.0) and sweep_math.psnr(mse) == pytest.approx(20 * math.log10(255))


def test_centre_crop_cuts_like_the_hosts_vae_encode(vae):
    image = picture(2, height=H + 5, width=W + 3)
    cropped = sweep_math.centre_crop(image, H, W)
    assert torch.equal(cropped, vae.vae_encode_crop_pixels(image))


# --- the sweep node -------------------------------------------------------------------------------

def parse_table(table: str) -> list[list[str]]:
    lines = table.strip().splitlines()
    assert lines[0].replace(" ", "") == "|strength|steps|PSNR(dB)|MAD(0-255)|"
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def test_sweep_tiles_are_the_four_nodes_chain_with_labels_and_faithful_metrics(model, conds, vae):
    image = picture(3, height=H + 3, width=W + 5)  # not a multiple of 8: Encode pads, Decode restores the size
    th, tw = H + 3, W + 5
    strengths, seed, steps = [0.0, 0.3, 0.7], 11, 6
    events, host_hook = [], comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None:
                                             events.append((value, total)))
    try:
        grid, table = SDEditStrengthSweep.execute(image, model, vae, conds[0], conds[1], "0, 0.3, 0.7", seed,
                                                  steps, 7.0, "euler", "normal", "proportional").args
    finally:
        comfy.utils.set_progress_bar_global_hook(host_hook)
    # One row of three tiles, each under a label band, GAP pixels apart.
    band = grid.shape[1] - th - 2 * GAP
    assert grid.shape == (1, th + band + 2 * GAP, 3 * tw + 4 * GAP, 3)
    assert 10 <= band <= 60
    rows = parse_table(table)
    assert [float(r[0]) for r in rows] == strengths
    reference = image
    bands = []
    for i, strength in enumerate(strengths):
        x = GAP + i * (tw + GAP)
        # The chain, node by node, from the full image: identical pixels.
        latent = SDEditEncode.execute(image, vae)[0]
        noisy = SDEditAddNoise.execute(model, latent, strength, seed)[0]
        denoised = SDEditDenoise.execute(model, *conds, noisy, steps, 7.0, "euler", "normal", "proportional")[0]
        chain = SDEditDecode.execute(denoised, vae)[0]
        tile = grid[:, GAP + band:GAP + band + th, x:x + tw]
        assert torch.equal(tile, chain)
        # Its row of the table: the steps that ran and metrics computed independently from the pixels.
        db, mad = numpy_psnr_and_mad(chain.numpy(), reference.numpy())
        assert int(rows[i][1]) == (sm.proportional_step_count(strength, steps) if strength else 0)
        assert float(rows[i][2]) == pytest.approx(db, abs=0.0051)
        assert float(rows[i][3]) == pytest.approx(mad, abs=0.0051)
        # The label: dark text on a white band, unlike the tile, different for each strength.
        label = grid[0, GAP:GAP + band, x:x + tw]
        assert label.max() == 1.0 and label.min() < 0.3 and (label < 0.5).float().mean() > 0.02
        bands.append(label)
    assert not torch.equal(bands[0], bands[1]) and not torch.equal(bands[1], bands[2])
    # The gaps between tiles are plain white.
    assert (grid[0, :, tw + GAP:tw + 2 * GAP] == 1.0).all()
    # Progress: the host's bar over the strengths ends at 3 of 3 (the Denoise steps report in between).
    assert (3, 3) in events and events[-1] == (3, 3)


def test_sweep_wraps_rows_after_four(model, conds, vae):
    grid, table = SDEditStrengthSweep.execute(picture(1), model, vae, *conds, "0 0 0 0 0", 0, 4, 7.0, "euler",
                                              "normal", "proportional").args
    band = (grid.shape[1] - 2 * H - 3 * GAP) // 2
    assert grid.shape == (1, 2 * (H + band) + 3 * GAP, 3 * W + 4 * GAP, 3)
    assert len(parse_table(table)) == 5


@pytest.mark.parametrize("strengths,words", [("0.2, x", ["'x'"]), ("2", ["2", "outside 0..1"]), ("", ["empty"])])
def test_sweep_bad_strengths_name_the_node_and_the_input(model, conds, vae, strengths, words):
    with pytest.raises(ValueError) as error:
        SDEditStrengthSweep.execute(picture(1), model, vae, *conds, strengths, 0, 4, 7.0, "euler", "normal",
                                    "proportional")
    message = str(error.value)
    assert SWEEP in message and "'strengths'" in message and all(w in message for w in words), message


def test_sweep_refuses_a_batch_naming_the_input(model, conds, vae):
    with pytest.raises(ValueError, match=r"'image' is a batch of 2"):
        SDEditStrengthSweep.execute(picture(1, batch=2), model, vae, *conds, "0.5", 0, 4, 7.0, "euler", "normal",
                                    "proportional")


def test_sweep_offers_the_hosts_samplers_and_schedulers_and_runs_the_ones_picked(model, conds, vae):
    """The sweep's sampling widgets offer what the host's own KSampler offers (and the pack's step modes), and
    each value picked reaches the chain: a tile is the four nodes run with those same settings."""
    import nodes as host_nodes
    sweep = {i.id: i for i in SDEditStrengthSweep.define_schema().inputs}
    host = host_nodes.KSampler.INPUT_TYPES()["required"]
    assert sweep["sampler_name"].options == list(host["sampler_name"][0])
    assert sweep["scheduler"].options == list(host["scheduler"][0])
    assert (sweep["step_mode"].options, sweep["step_mode"].default) == (list(sm.STEP_MODES), "proportional")
    assert (sweep["seed"].min, sweep["seed"].max) == (host["seed"][1]["min"], host["seed"][1]["max"])
    # Settings other than the defaults in every widget, so that one the sweep dropped or swapped shows.
    strength, seed, steps, cfg, sampler_name, scheduler, step_mode = 0.4, 3, 5, 3.5, "dpmpp_2m", "karras", "all"
    assert (steps, cfg, sampler_name, scheduler, step_mode) != tuple(
        sweep[n].default for n in ("steps", "cfg", "sampler_name", "scheduler", "step_mode"))
    grid = SDEditStrengthSweep.execute(picture(2), model, vae, *conds, str(strength), seed, steps, cfg, sampler_name,
                                       scheduler, step_mode).args[0]
    noisy = SDEditAddNoise.execute(model, SDEditEncode.execute(picture(2), vae)[0], strength, seed)[0]
    denoised = SDEditDenoise.execute(model, *conds, noisy, steps, cfg, sampler_name, scheduler, step_mode)[0]
    chain = SDEditDecode.execute(denoised, vae)[0]
    assert torch.equal(grid[:, grid.shape[1] - GAP - H:grid.shape[1] - GAP, GAP:GAP + W], chain)
