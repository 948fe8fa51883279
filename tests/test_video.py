"""Video on the small random Wan 2.1 (harness/families.py, loaded with the host's UNETLoader and VAELoader as in
tests/test_families.py): SDEdit 3 · Denoise under the host's own context windows (WanContextWindowsManual) on a
video longer than one window, the trajectory and the strength sweep of a video, and the canvas line's schedule
for a graph that loads its model with UNETLoader (GET /sdedit/step_plan with `unet_name`).

Videos are tiny (32x48 px, 5-13 frames) and steps few: each test runs in seconds on two CPU cores.
"""
import asyncio
import inspect
import json
import math

import comfy.samplers
import pytest
import torch
from aiohttp.test_utils import make_mocked_request
from comfy_extras.nodes_custom_sampler import KSamplerSelect
from harness import families
from helpers import HOST_VERSION, host_custom_advanced, video
from sdedit_img2img.nodes import checks, masking, routes, strength_map
from sdedit_img2img.nodes import sdedit_math as sm
from sdedit_img2img.nodes.add_noise import SDEditAddNoise
from sdedit_img2img.nodes.decode import SDEditDecode
from sdedit_img2img.nodes.denoise import SDEditDenoise, SDEditDenoiseCustom
from sdedit_img2img.nodes.encode import SDEditEncode
from sdedit_img2img.nodes.flowedit import SDEditFlowEdit
from sdedit_img2img.nodes.sweep import GAP, SDEditStrengthSweep
from sdedit_img2img.nodes.sweep_math import psnr, squared_and_absolute_error

try:  # the host's context windows came with ComfyUI 0.3.51
    from comfy_extras.nodes_context_windows import WanContextWindowsManualNode
except ImportError:
    WanContextWindowsManualNode = None

SEED, STEPS, CFG = 11, 4, 3.0
# The context-window tests are defined where the host has them, FreeNoise's (Context Windows' `freenoise`: the
# sampler's noise shuffled along the frames) where it has that (ComfyUI 0.4.0 on); tools/compat.sh runs this
# module on every release, and the first test holds each to the host's version.
HOST_WINDOWS = WanContextWindowsManualNode is not None
HOST_FREENOISE = HOST_WINDOWS and "freenoise" in inspect.signature(WanContextWindowsManualNode.execute).parameters


def watched(model):
    """A clone of `model` that records, for every call of the diffusion model, the latent's shape and the
    frames of the context window the host's handler ran it on (None: the whole latent), through the host's
    own model_function_wrapper (the model itself runs as it is)."""
    calls = []
    patched = model.clone()

    def wrapper(apply_model, args):
        window = args["c"].get("transformer_options", {}).get("context_window")
        calls.append((tuple(args["input"].shape), None if window is None else list(window.index_list)))
        return apply_model(args["input"], args["timestep"], **args["c"])
    patched.set_model_unet_function_wrapper(wrapper)
    return patched, calls


def denoised(node, model, conds, noisy, sampler_name="euler"):
    if node == "custom":  # the host's CFGGuider and KSamplerSelect, as a user wires SDEdit 3 · Denoise (Custom)
        guider = comfy.samplers.CFGGuider(model)
        guider.set_conds(*conds)
        guider.set_cfg(CFG)
        sampler = KSamplerSelect().get_sampler(sampler_name)[0]
        return SDEditDenoiseCustom.execute(guider, sampler, noisy, STEPS, "normal", "proportional").args[:2]
    return SDEditDenoise.execute(model, *conds, noisy, STEPS, CFG, sampler_name, "normal", "proportional").args


def edit_masks():
    half = torch.ones(1, 32, 48)
    half[:, :, :24] = 0.0  # the left half kept in every frame
    frames = torch.ones(13, 32, 48)
    frames[:5] = 0.0  # frames 0-4 kept whole (latent frames 0 and 1 are all kept)
    return {"half": half, "frames": frames}


# --- 1. long videos under the host's context windows ---------------------------------------------------------

def test_the_host_has_context_windows_from_0_3_51_and_freenoise_from_0_4_0(wan):
    """Which tests of this section are defined is decided by the host's version, so a release that has the feature
    cannot pass by leaving it out; a model without FreeNoise has no shuffle for Add Noise."""
    assert HOST_WINDOWS == (HOST_VERSION >= (0, 3, 51)) and HOST_FREENOISE == (HOST_VERSION >= (0, 4, 0))
    assert checks.freenoise(wan[0]) == ()
    if HOST_WINDOWS:
        assert checks.freenoise(windowed(wan[0], 5, 1)) == ()


if HOST_WINDOWS:  # defined, not skipped, where the host has context windows (ComfyUI 0.3.51 on)
    def windowed(model, context_length, context_overlap, freenoise=False):
        """`model` patched by the host's WanContextWindowsManual (lengths in pixel frames, like its widgets)."""
        options = {"freenoise": freenoise} if HOST_FREENOISE else {}
        assert HOST_FREENOISE or not freenoise, "this host has no FreeNoise"
        return WanContextWindowsManualNode.execute(model, context_length, context_overlap, "standard_static", 1, False,
                                                   "pyramid", **options)[0]


    @pytest.mark.parametrize("node,masked", [("denoise", "half"), ("custom", "frames")])
    def test_denoise_runs_window_by_window_under_wan_context_windows(wan, node, masked):
        """13 frames are 4 latent frames; windows of 2 latent frames overlapping by 1 (WanContextWindowsManual's
        5 and 1 pixel frames) are [0, 1], [1, 2], [2, 3]: every model call sees one window, all three run at every
        step, the result differs from the whole-latent run, and the keep region is the input's in every frame."""
        model, vae, conds = wan
        clip, mask = video(13), edit_masks()[masked]
        counted, calls = watched(model)
        latent = SDEditEncode.execute(clip, vae, mask=mask)[0]
        assert latent["samples"].shape[2] == 4
        noisy = SDEditAddNoise.execute(model, latent, 0.5, SEED)[0]
        out = denoised(node, windowed(counted, 5, 1), conds, noisy)[0]
        steps = sm.proportional_step_count(0.5, STEPS)
        windows = [[0, 1], [1, 2], [2, 3]]
        assert [w for _, w in calls] == windows * steps, calls
        assert all(shape[2] == 2 and shape[3:] == (4, 6) for shape, _ in calls), calls
        decoded = SDEditDecode.execute(out, vae)[0]
        assert decoded.shape == clip.shape
        keep = mask.expand(13, -1, -1) == 0
        for f in range(13):
            assert torch.equal(decoded[f][keep[f]], clip[f][keep[f]]), f"frame {f}: the kept pixels are the input's"
        assert float((decoded[~keep] - clip[~keep]).abs().mean()) > 0.02, "the edited part is edited"
        # The same chain without windows: one call per step on all 4 latent frames, and another result.
        calls.clear()
        whole = denoised(node, counted, conds, noisy)[0]
        assert [(shape[2], w) for shape, w in calls] == [(4, None)] * steps
        assert float((whole["samples"] - out["samples"]).abs().max()) > 1e-3, "the windows change the prediction"


    def test_a_window_as_long_as_the_video_is_the_plain_run_bit_for_bit(wan):
        """The host's handler runs the whole latent where it fits in one window: the windowed model then gives
        Denoise's plain result exactly (the pack adds nothing of its own around the handler)."""
        model, vae, conds = wan
        latent = SDEditEncode.execute(video(9), vae)[0]
        noisy = SDEditAddNoise.execute(model, latent, 0.6, SEED)[0]
        plain = denoised("denoise", model, conds, noisy)[0]
        counted, calls = watched(windowed(model, 9, 1))
        assert torch.equal(denoised("denoise", counted, conds, noisy)[0]["samples"], plain["samples"])
        assert calls and all(w is None and shape[2] == 3 for shape, w in calls)


if HOST_FREENOISE:  # defined, not skipped, where the host has FreeNoise (ComfyUI 0.4.0 on)
    def host_sigmas(model, strength):
        """The sigmas Add Noise + Denoise run at `strength` (normal, proportional), for the host's sampler."""
        ms = model.get_model_object("model_sampling")
        return sm.sdedit_sigmas(ms, "normal", STEPS, strength, sm.start_sigma(ms, strength), "proportional", False)


    @pytest.mark.parametrize("strength", [0.4, 0.7])
    def test_freenoise_windows_match_the_hosts_sampler(wan, strength):
        """With FreeNoise on, the host's sampler starts from its noise shuffled along the frames: Add Noise given the
        windowed model noises with that shuffle, and Add Noise + Denoise equal the host's SamplerCustomAdvanced on the
        same windowed model, seed and sigmas. The shuffle matters: without FreeNoise the result is another."""
        model, vae, conds = wan
        latent = SDEditEncode.execute(video(17), vae)[0]  # 5 latent frames: windows of 2 (overlap 1) shuffle 3
        shuffled, plain = windowed(model, 5, 1, freenoise=True), windowed(model, 5, 1)
        noisy = SDEditAddNoise.execute(shuffled, latent, strength, SEED)[0]
        ours = denoised("denoise", shuffled, conds, noisy)[0]["samples"]
        sigmas = host_sigmas(model, strength)
        host = host_custom_advanced(shuffled, conds, latent, sigmas, SEED, CFG, "euler")["samples"]
        assert float((ours - host).abs().max() / host.abs().max()) <= 1e-5
        unshuffled = denoised("denoise", plain, conds, SDEditAddNoise.execute(plain, latent, strength, SEED)[0])[0]
        assert float((unshuffled["samples"] - host).abs().max()) > 1e-3, "FreeNoise changes the run"


    def test_under_freenoise_a_constant_strength_map_is_the_plain_chain_at_that_strength(wan):
        """A grey mask of one value c re-noises its parts with Add Noise's noise as the run started from it,
        FreeNoise's shuffle included, so it gives the plain chain at c x strength, bit for bit, as without."""
        model, vae, conds = wan
        clip, shuffled = video(17), windowed(model, 5, 1, freenoise=True)
        mapped = SDEditEncode.execute(clip, vae, mask=torch.full((1, 32, 48), 0.5))[0]
        plain = SDEditEncode.execute(clip, vae)[0]
        runs = [denoised("denoise", shuffled, conds, SDEditAddNoise.execute(shuffled, latent, strength, SEED)[0])[0]
                for latent, strength in ((mapped, 0.8), (plain, 0.4))]
        assert torch.equal(runs[0]["samples"], runs[1]["samples"])


    def test_freenoise_on_one_of_add_noise_and_denoise_only_is_refused_by_name(wan):
        """The usual slip: the Context Windows node wired to Denoise only. Add Noise then starts from other noise than
        the host's sampler would, so Denoise refuses, naming the input and the fix; and the other way round."""
        model, vae, conds = wan
        latent = SDEditEncode.execute(video(17), vae)[0]
        shuffled, plain = windowed(model, 5, 1, freenoise=True), windowed(model, 5, 1)
        for noised_with, denoised_with, said in ((plain, shuffled, "noised with no FreeNoise shuffle"),
                                                 (shuffled, plain, "applies no FreeNoise shuffle")):
            noisy = SDEditAddNoise.execute(noised_with, latent, 0.5, SEED)[0]
            for node in ("denoise", "custom"):
                with pytest.raises(ValueError, match="input 'noisy_latent'") as refused:
                    denoised(node, denoised_with, conds, noisy)
                assert said in str(refused.value) and "Fix: connect the same MODEL" in str(refused.value)
        # Other windows shuffle other frames: refused too.
        noisy = SDEditAddNoise.execute(windowed(model, 9, 1, freenoise=True), latent, 0.5, SEED)[0]
        with pytest.raises(ValueError, match="windows of 3 latent frames .* windows of 2 latent frames"):
            denoised("denoise", shuffled, conds, noisy)


    def flowedited(model, conds, latent, strength, sample_last):
        noisy = SDEditAddNoise.execute(model, latent, strength, SEED)[0]
        return SDEditFlowEdit.execute(model, conds[0], conds[0], conds[1], noisy, STEPS, 1.0, CFG, "normal",
                                      "proportional", sample_last=sample_last)[0]["samples"]


    def test_flowedit_draws_its_noise_as_freenoise_shuffles_it(wan):
        """FlowEdit draws noise at every level where a sampler starts from one draw: FreeNoise shuffles each draw as
        the host shuffles its sampler's. Where every level is ordinary sampling (sample_last covers them all) FlowEdit
        is the host's SamplerCustomAdvanced with the target prompt, from its first draw: equal to it on the FreeNoise
        model. Where the levels are FlowEdit's own, FreeNoise changes the edit (ignored, it would not)."""
        model, vae, conds = wan
        latent = SDEditEncode.execute(video(17), vae)[0]
        shuffled, plain = windowed(model, 5, 1, freenoise=True), windowed(model, 5, 1)
        strength = 0.7
        sigmas = host_sigmas(model, strength)
        host = host_custom_advanced(shuffled, conds, latent, sigmas, SEED, CFG, "euler")["samples"]
        ours = flowedited(shuffled, conds, latent, strength, sample_last=STEPS)
        assert float((ours - host).abs().max() / host.abs().max()) <= 1e-5
        edits = [flowedited(m, conds, latent, strength, sample_last=0) for m in (shuffled, plain)]
        assert float((edits[0] - edits[1]).abs().max()) > 1e-3, "FreeNoise changes FlowEdit's draws"


# --- per-frame masks on the VAE's groups of frames -----------------------------------------------------------

def test_per_frame_masks_reduce_to_latent_frames_along_the_vaes_groups():
    """Frame 0 alone, then groups of (F - 1) / (T - 1): each latent frame the most edited frame of its group."""
    mask = torch.zeros(13, 1, 2, 3)
    mask[5:] = 1.0  # frames 0-4 kept: latent frames 0 (frame 0) and 1 (frames 1-4)
    mask[6, :, 0, 0] = 0.5
    grouped = masking.to_latent_frames(mask, 4)
    assert grouped.shape == (1, 1, 4, 2, 3)
    assert grouped.amax(dim=(-1, -2)).flatten().tolist() == [0.0, 0.0, 1.0, 1.0]
    mixed = torch.zeros(9, 1, 2, 3)
    mixed[3:] = 1.0  # 6 frames padded to 9, frames 0-2 kept: latent frame 1 (frames 1-4) mixes keep and edit
    assert masking.to_latent_frames(mixed, 3).amax(dim=(-1, -2)).flatten().tolist() == [0.0, 1.0, 1.0]
    grey = torch.zeros(9, 1, 2, 3)
    grey[1:5], grey[5:] = 0.25, 0.75
    cells = strength_map.latent_map(masking.to_latent_frames(grey, 3), (1, 16, 3, 1, 1))
    assert cells.flatten().tolist() == [0.0, 0.25, 0.75], "a grey map's latent frames are their groups' values"
    assert masking.to_latent_frames(torch.zeros(8, 1, 2, 3), 3) is None, "8 frames are not 1 + 2r for 3 latent frames"


@pytest.mark.parametrize("frames,kept", [(13, 5), (13, 2), (6, 1)])
def test_a_latent_frame_whose_frames_are_all_kept_is_the_clean_latent_exactly(wan, frames, kept):
    """Frames 0 .. kept-1 kept whole: the latent frames whose VAE group holds only kept frames stay the clean
    latent (the host's interpolation in time gave 13 frames / 5 kept an edit of 0.375 in latent
    frame 1 and 13 / 2 kept 0.125 in latent frame 0); every other latent frame is edited; the kept frames are
    the input's pixels."""
    model, vae, conds = wan
    clip = video(frames)
    mask = torch.ones(frames, 32, 48)
    mask[:kept] = 0.0
    latent = SDEditEncode.execute(clip, vae, mask=mask)[0]
    noisy = SDEditAddNoise.execute(model, latent, 0.6, SEED)[0]
    out = denoised("denoise", model, conds, noisy)[0]
    whole = 1 + (kept - 1) // 4  # latent frame 0 is frame 0; latent frame k is frames 4k-3 .. 4k
    clean, done = latent["samples"], out["samples"]
    # held on the clean latent to the end: equal but for the host's latent_format round trip (process_in/out)
    torch.testing.assert_close(done[:, :, :whole], clean[:, :, :whole], rtol=0, atol=1e-5)
    for t in range(whole, clean.shape[2]):
        assert float((done[:, :, t] - clean[:, :, t]).abs().mean()) > 1e-3, f"latent frame {t} is edited"
    decoded = SDEditDecode.execute(out, vae)[0]
    assert decoded.shape == clip.shape and torch.equal(decoded[:kept], clip[:kept])


# --- 2. the trajectory and the strength sweep of a video ------------------------------------------------------

def test_the_trajectory_of_a_video_is_one_whole_video_latent_per_step(wan):
    """6 frames are padded to 9 (3 latent frames): the trajectory is a batch of one 5-D latent per step, each
    all 3 latent frames, the last the result; it decodes to one clip of the input's 6 frames per step, in step
    order, every step trimmed alike (before, only the entry equal to the result was trimmed)."""
    model, vae, conds = wan
    clip = video(6)
    latent = SDEditEncode.execute(clip, vae)[0]
    noisy = SDEditAddNoise.execute(model, latent, 0.8, SEED)[0]
    out, trajectory = denoised("denoise", model, conds, noisy, "dpmpp_2m")
    steps = sm.proportional_step_count(0.8, STEPS)
    assert steps >= 2
    samples = trajectory["samples"]
    assert samples.shape == (steps, *out["samples"].shape[1:]) == (steps, 16, 3, 4, 6)
    assert torch.equal(samples[-1], out["samples"][0]), "dpmpp_2m ends on its last prediction"
    assert float((samples[0] - samples[-1]).abs().mean()) > 1e-3, "the steps differ"
    clips = SDEditDecode.execute(trajectory, vae)[0]
    assert clips.shape == (steps * 6, 32, 48, 3)
    first = SDEditDecode.execute({"samples": samples[:1]}, vae)[0]  # a row alone: found again by its content
    torch.testing.assert_close(clips[:6], first, rtol=0, atol=1e-4)  # step 1's clip first (batched VAE)
    torch.testing.assert_close(clips[-6:], SDEditDecode.execute(out, vae)[0], rtol=0, atol=1e-4)


def parse_table(table: str) -> list[list[str]]:
    lines = table.strip().splitlines()
    assert lines[0].replace(" ", "") == "|strength|steps|PSNR(dB)|MAD(0-255)|"
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def test_the_sweep_of_a_video_is_a_video_of_grids_and_a_table_over_all_frames(wan):
    """A 5-frame video at strengths 0 and 0.6: the grid is 5 grids (frame f holds each strength's frame f, the
    four nodes' chain exactly) and each row of the table is over all frames together, not one frame."""
    model, vae, conds = wan
    clip = video(5)
    grid, table = SDEditStrengthSweep.execute(clip, model, vae, *conds, "0, 0.6", SEED, STEPS, CFG, "euler",
                                              "normal", "proportional").args
    band = grid.shape[1] - 32 - 2 * GAP
    assert grid.shape == (5, 32 + band + 2 * GAP, 2 * 48 + 3 * GAP, 3) and 10 <= band <= 60
    rows = parse_table(table)
    per_frame_psnr = []
    for i, strength in enumerate([0.0, 0.6]):
        latent = SDEditEncode.execute(clip, vae)[0]
        noisy = SDEditAddNoise.execute(model, latent, strength, SEED)[0]
        chain = SDEditDecode.execute(denoised("denoise", model, conds, noisy)[0], vae)[0]
        x = GAP + i * (48 + GAP)
        assert torch.equal(grid[:, GAP + band:GAP + band + 32, x:x + 48], chain), strength
        mse, mad = squared_and_absolute_error(chain, clip)
        assert (float(rows[i][0]), int(rows[i][1])) == (strength, sm.proportional_step_count(strength, STEPS) if strength else 0)
        assert float(rows[i][2]) == pytest.approx(psnr(mse), abs=0.0051)
        assert float(rows[i][3]) == pytest.approx(mad, abs=0.0051)
        per_frame_psnr.append([psnr(squared_and_absolute_error(chain[f:f + 1], clip[f:f + 1])[0]) for f in range(5)])
    # Not one frame's figure: the frames differ, and the table's is the mean over all frames' pixels.
    assert max(per_frame_psnr[1]) - min(per_frame_psnr[1]) > 0.1, per_frame_psnr[1]
    assert all(abs(float(rows[1][2]) - p) > 0.01 for p in per_frame_psnr[1])
    # The labels sit in every frame's grid.
    assert torch.equal(grid[0, :GAP + band], grid[4, :GAP + band])


def test_the_sweep_still_refuses_a_batch_of_pictures_for_a_picture_vae(sd15):
    model, _, vae = sd15
    with pytest.raises(ValueError, match=r"'image' is a batch of 2 .*video VAE"):
        SDEditStrengthSweep.execute(torch.rand(2, 64, 64, 3), model, vae, [], [], "0.5", 0, 4, 7.0, "euler",
                                    "normal", "proportional")


# --- 3. the canvas line for a graph that loads its model with UNETLoader -------------------------------------

def test_the_step_plan_reads_a_diffusion_model_header_for_unet_name(wan):
    """GET /sdedit/step_plan?unet_name=<a file of diffusion_models> (what the canvas sends for a Load Diffusion
    Model upstream): σ on Wan's own schedule (flow, shift 8), read from the file's header, as the model the
    host's UNETLoader loads samples. The same file named as a ckpt_name is not read as a checkpoint (bare keys)."""
    model = wan[0]
    unet = families.ensure_wan()[0].name
    strength = 0.6
    request = make_mocked_request("GET", f"/sdedit/step_plan?strength={strength}&steps=20&step_mode=proportional"
                                  f"&unet_name={unet}")
    response = asyncio.run(routes.step_plan_route(request))
    assert response.status == 200
    plan = json.loads(response.text)
    hosts = sm.start_sigma(model.get_model_object("model_sampling"), strength)
    assert (plan["schedule"], plan["assumed"], plan["unet_name"]) == ("Wan 2.1", False, unet), plan
    assert plan["sigma"] == pytest.approx(hosts, abs=1e-9) and 0 < plan["sigma"] < 1, plan
    assert unet in plan["reason"]
    sd15 = routes.answer(strength, 20, "proportional")
    assert sd15["assumed"] and sd15["sigma"] > 2 and not math.isclose(sd15["sigma"], plan["sigma"])
    wrong = routes.answer(strength, 20, "proportional", ckpt_name=unet)
    assert (wrong["schedule"], wrong["assumed"]) == ("SD1.5", True) and "unet_name" not in wrong, wrong
    missing = routes.answer(strength, 20, "proportional", unet_name="no-such.safetensors")
    assert missing["assumed"] and "not in the diffusion_models folder" in missing["reason"], missing
