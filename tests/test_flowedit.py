"""SDEdit 3 · FlowEdit checked against its closed form, on the host's real guider and model wrapper.

Data of each prompt is Gaussian, N(m_prompt, s^2) per element, and CFG mixes the means linearly
(m = m_neg + cfg (m_prompt - m_neg)). The ideal denoiser at x = a X + sigma N (a = 1 for EPS, 1 - sigma for
flow) is D = m + c (x - a m), c = a s^2 / (a^2 s^2 + sigma^2), so V_tar - V_src = [(1 - c) d - (1 - c a) dm] / sigma
with d = Z - X: the noise drops out and FlowEdit's edit d follows a scalar recurrence over the levels.
The denoiser replaces the U-Net through the host's model_function_wrapper; each prompt's mean is read from its
conditioning tensor.
"""
import logging

import nodes as host_nodes
from comfy_extras.nodes_latent import LatentBatch
import pytest
import torch
from helpers import cancelled, flow_sampling, host_node, left_keep_mask, picture
from sdedit_img2img.nodes import pictures
from sdedit_img2img.nodes import sdedit_math as sm
from sdedit_img2img.nodes.add_noise import SDEditAddNoise
from sdedit_img2img.nodes.decode import SDEditDecode
from sdedit_img2img.nodes.encode import SDEditEncode
from sdedit_img2img.nodes.flowedit import SDEditFlowEdit

S = 0.8
M_SOURCE, M_TARGET, M_NEG = 0.2, 0.9, 0.1


def prompt(mean, tokens=2):
    return [[torch.full((1, tokens, 768), float(mean)), {}]]


def gaussian(model, flow, seen=None, calls=None):
    """A clone of `model` whose prediction is the ideal denoiser of the prompt's Gaussian; `flow`: rectified flow
    (shift 3) instead of the model's EPS schedule. `seen` collects the levels of every row, `calls` the level and
    the rows of every model call."""
    patched = model.clone()
    if flow:
        patched.add_object_patch("model_sampling", flow_sampling(3.0))

    def ideal(apply_model, args):
        x, sigma = args["input"], args["timestep"].view(-1, 1, 1, 1).to(torch.float64)
        m = args["c"]["c_crossattn"][:, 0, 0].view(-1, 1, 1, 1).to(torch.float64)
        a = 1.0 - sigma if flow else torch.ones_like(sigma)
        if seen is not None:
            seen.extend(float(s) for s in sigma.flatten())
        if calls is not None:
            calls.append((float(sigma.flatten()[0]), x.shape[0]))
        return (m + a * S ** 2 / (a ** 2 * S ** 2 + sigma ** 2) * (x - a * m)).to(x.dtype)
    patched.set_model_unet_function_wrapper(ideal)
    return patched


def mixed(mean, cfg):
    return mean if cfg == 1.0 else M_NEG + cfg * (mean - M_NEG)


def closed_form(model_sampling, sigmas, flow, source_cfg, target_cfg) -> float:
    """The edit d after every level, in float64."""
    dm = mixed(M_TARGET, target_cfg) - mixed(M_SOURCE, source_cfg)
    d = 0.0
    for sigma, nxt in zip(sigmas[:-1].tolist(), sigmas[1:].tolist()):
        a = 1.0 - sigma if flow else 1.0
        c = a * S ** 2 / (a ** 2 * S ** 2 + sigma ** 2)
        d += (nxt - sigma) * ((1 - c) * d - (1 - c * a) * dm) / sigma
    return d


def picture_latent(model):
    fmt = model.get_model_object("latent_format")
    y = torch.linspace(-2, 2, 4 * 8 * 12).view(1, 4, 8, 12)  # model space
    return y, {"samples": fmt.process_out(y)}


def flowedit(model, latent, strength=0.6, seed=3, steps=10, source=M_SOURCE, target=M_TARGET, source_cfg=1.0,
             target_cfg=3.0, scheduler="normal", step_mode="proportional", target_tokens=2, **options):
    noisy = SDEditAddNoise.execute(model, latent, strength, seed)[0]
    return SDEditFlowEdit.execute(model, prompt(source), prompt(target, target_tokens), prompt(M_NEG), noisy, steps,
                                  source_cfg, target_cfg, scheduler, step_mode, **options)


@pytest.mark.parametrize("flow", [False, True], ids=["eps", "flow"])
@pytest.mark.parametrize("step_mode", ["proportional", "all"])
def test_flowedit_is_its_closed_form_recurrence(sd15, flow, step_mode):
    model = gaussian(sd15[0], flow)
    y, latent = picture_latent(model)
    ms = model.get_model_object("model_sampling")
    out, trajectory = flowedit(model, latent, strength=0.7, steps=12, step_mode=step_mode)
    sigmas = sm.sdedit_sigmas(ms, "normal", 12, 0.7, sm.start_sigma(ms, 0.7), step_mode)
    d = closed_form(ms, sigmas, flow, 1.0, 3.0)
    edited = model.get_model_object("latent_format").process_in(out["samples"]) - y
    assert abs(d) > 0.3, "the edit moves the picture"
    torch.testing.assert_close(edited, torch.full_like(edited, d), rtol=0, atol=1e-5)
    assert pictures.carried(out)[0].sigma is None  # denoised: Decode reads it as a clean latent
    assert trajectory["samples"].shape[0] == len(sigmas) - 1  # Z after every level, the last one the result
    torch.testing.assert_close(trajectory["samples"][-1:], out["samples"], rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("flow", [False, True], ids=["eps", "flow"])
@pytest.mark.parametrize("source_cfg,target_cfg,target_tokens,calls", [
    (3.5, 13.5, 2, 1),   # the paper's SD3 cfgs: both branches' cond and uncond in one call
    (1.0, 1.0, 2, 1),    # no uncond on either branch: the two conds in one call
    (1.0, 3.0, 2, 2),    # the cfg-1 shortcut on the source only: each branch its own call, as the host runs it
    (3.5, 13.5, 10, 3),  # prompt lengths 2 and 10 do not concatenate (the host's conds): the source's cond and
                         # uncond in one call, the target's cond and uncond in one each, as sampling_function runs them
], ids=["paper-cfgs", "cfg-1", "one-cfg-1", "lengths-apart"])
def test_both_branches_share_one_model_call_where_the_host_can_batch_them(sd15, flow, source_cfg, target_cfg,
                                                                          target_tokens, calls):
    made = []
    model = gaussian(sd15[0], flow, calls=made)
    y, latent = picture_latent(model)
    ms = model.get_model_object("model_sampling")
    out = flowedit(model, latent, strength=0.7, steps=12, source_cfg=source_cfg, target_cfg=target_cfg,
                   target_tokens=target_tokens)[0]
    sigmas = sm.sdedit_sigmas(ms, "normal", 12, 0.7, sm.start_sigma(ms, 0.7), "proportional")
    levels = sorted({sigma for sigma, _ in made}, reverse=True)
    assert len(levels) == len(sigmas) - 1
    assert [sum(1 for sigma, _ in made if sigma == level) for level in levels] == [calls] * len(levels)
    uncond = not (source_cfg == target_cfg == 1.0)
    assert sum(rows for _, rows in made) == len(levels) * (2 + 2 * uncond - (source_cfg != target_cfg and
                                                                             1.0 in (source_cfg, target_cfg)))
    d = closed_form(ms, sigmas, flow, source_cfg, target_cfg)  # batched or not, the same edit
    edited = model.get_model_object("latent_format").process_in(out["samples"]) - y
    torch.testing.assert_close(edited, torch.full_like(edited, d), rtol=0, atol=1e-5 * max(1.0, abs(d)))


@pytest.mark.parametrize("flow", [False, True], ids=["eps", "flow"])
def test_two_seeds_give_the_same_edit(sd15, flow):
    """The noise is shared by the two branches: with the closed-form model the result does not depend on it."""
    model = gaussian(sd15[0], flow)
    _, latent = picture_latent(model)
    one = flowedit(model, latent, seed=1)[0]["samples"]
    other = flowedit(model, latent, seed=2024)[0]["samples"]
    averaged = flowedit(model, latent, seed=5, average=3)[0]["samples"]
    torch.testing.assert_close(one, other, rtol=1e-6, atol=1e-5)  # float32 rounding of values up to ~20
    torch.testing.assert_close(one, averaged, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("flow", [False, True], ids=["eps", "flow"])
def test_equal_prompts_and_cfgs_give_the_input_back(sd15, flow):
    model = gaussian(sd15[0], flow)
    _, latent = picture_latent(model)
    out, trajectory = flowedit(model, latent, target=M_SOURCE, target_cfg=1.0)
    assert torch.equal(out["samples"], latent["samples"])
    assert trajectory["samples"].shape[0] == 6  # round(0.6 x 10) levels


@pytest.mark.parametrize("flow", [False, True], ids=["eps", "flow"])
@pytest.mark.parametrize("strength,step_mode", [(0.4, "proportional"), (0.85, "all")])
def test_the_first_level_is_the_strengths(sd15, flow, strength, step_mode):
    seen = []
    model = gaussian(sd15[0], flow, seen)
    _, latent = picture_latent(model)
    flowedit(model, latent, strength=strength, steps=10, step_mode=step_mode)
    ms = model.get_model_object("model_sampling")
    levels = sorted(set(seen), reverse=True)
    assert levels[0] == pytest.approx(sm.start_sigma(ms, strength), rel=1e-6)
    assert len(levels) == sm.step_plan(strength, 10, step_mode)[0]
    assert len(seen) == 3 * len(levels)  # per level: the source's cond (cfg 1), the target's cond and uncond


def test_the_last_levels_as_ordinary_sampling(sd15):
    """sample_last (the paper's n_min): those levels take one branch, the target's."""
    seen = []
    model = gaussian(sd15[0], True, seen)
    _, latent = picture_latent(model)
    out = flowedit(model, latent, steps=10, sample_last=2)[0]
    assert len(seen) == 3 * 4 + 2 * 2  # 4 FlowEdit levels (source at cfg 1: cond only), 2 sampled (cond, uncond)
    plain = flowedit(model, latent, steps=10)[0]
    assert float((out["samples"] - plain["samples"]).abs().max()) > 1e-3


def test_a_differential_diffusion_patch_is_named_and_left_out(sd15, caplog):
    """A mask's parts join at their own levels (FlowEdit's rule); the host's Differential Diffusion would threshold
    the mask a second time: it is left out, and the log says so by the node's name."""
    from comfy_extras.nodes_differential_diffusion import DifferentialDiffusion
    model = gaussian(sd15[0], False)
    _, latent = picture_latent(model)
    mask = torch.ones(1, 64, 96)
    mask[:, :, :48] = 0.5
    masked = host_nodes.SetLatentNoiseMask().set_mask(latent, mask)[0]
    patched = host_node(DifferentialDiffusion, model)[0]
    with caplog.at_level(logging.INFO):
        out = flowedit(patched, masked, strength=0.8)[0]["samples"]
    said = [r.getMessage() for r in caplog.records if "Differential Diffusion" in r.getMessage()]
    assert said and all(m.startswith("SDEdit 3 · FlowEdit: ") for m in said), said
    assert torch.equal(out, flowedit(model, masked, strength=0.8)[0]["samples"])


@pytest.mark.parametrize("flow", [False, True], ids=["eps", "flow"])
def test_the_kept_region_of_a_mask_is_the_input_exactly(sd15, flow):
    model = gaussian(sd15[0], flow)
    y, latent = picture_latent(model)
    mask = torch.ones(1, 64, 96)
    mask[:, :, :48] = 0.0  # the left 6 of the 12 latent columns kept
    masked = host_nodes.SetLatentNoiseMask().set_mask(latent, mask)[0]
    out = flowedit(model, masked)[0]["samples"]
    assert torch.equal(out[..., :6], latent["samples"][..., :6])
    assert float((out[..., 6:] - latent["samples"][..., 6:]).abs().min()) > 0.1


def test_a_latent_that_skipped_add_noise_is_refused(sd15):
    model = gaussian(sd15[0], False)
    _, latent = picture_latent(model)
    with pytest.raises(ValueError, match="SDEdit 3 · FlowEdit: input 'noisy_latent' carries no SDEdit noise level"):
        SDEditFlowEdit.execute(model, prompt(0), prompt(1), prompt(0), latent, 10, 1.0, 1.0, "normal", "proportional")


def test_a_prompt_of_another_models_shape_is_refused(sd15):
    model = gaussian(sd15[0], False)
    _, latent = picture_latent(model)
    noisy = SDEditAddNoise.execute(model, latent, 0.5, 1)[0]
    other = [[torch.zeros(1, 2, 4096), {}]]
    with pytest.raises(ValueError, match="input 'source_positive' holds text tokens 4096 wide, but this model takes 768"):
        SDEditFlowEdit.execute(model, other, prompt(1), prompt(0), noisy, 10, 1.0, 1.0, "normal", "proportional")


def test_strength_0_gives_the_input(sd15):
    model = gaussian(sd15[0], False)
    _, latent = picture_latent(model)
    out = flowedit(model, latent, strength=0.0)[0]
    assert torch.equal(out["samples"], latent["samples"])


# --- composition with the chain ------------------------------------------------------------------------------------

def test_a_grey_map_of_one_value_is_flowedit_at_that_strength(sd15):
    model = gaussian(sd15[0], True)
    _, latent = picture_latent(model)
    mapped = host_nodes.SetLatentNoiseMask().set_mask(latent, torch.full((1, 64, 96), 0.5))[0]
    assert torch.equal(flowedit(model, mapped, strength=0.8)[0]["samples"],
                       flowedit(model, latent, strength=0.4)[0]["samples"])


@pytest.mark.parametrize("flow", [False, True], ids=["eps", "flow"])
def test_each_part_of_a_grey_map_is_edited_from_its_own_level(sd15, flow):
    seen = []
    model = gaussian(sd15[0], flow, seen)
    y, latent = picture_latent(model)
    mask = torch.ones(1, 64, 96)
    mask[:, :, :48] = 0.5  # the left half at half the strength
    out = flowedit(model, host_nodes.SetLatentNoiseMask().set_mask(latent, mask)[0], strength=0.8)[0]
    ms = model.get_model_object("model_sampling")
    schedule = torch.tensor(sorted(set(seen), reverse=True) + [0.0], dtype=torch.float64)
    edited = model.get_model_object("latent_format").process_in(out["samples"]) - y
    for cells, strength in ((slice(0, 6), 0.4), (slice(6, 12), 0.8)):
        start = sm.start_sigma(ms, strength)
        assert any(abs(float(s) - start) <= 1e-6 * start for s in schedule), "the part's own level is in the run"
        d = closed_form(ms, schedule[schedule <= start * (1 + 1e-6)], flow, 1.0, 3.0)
        part = edited[..., cells]
        torch.testing.assert_close(part, torch.full_like(part, d), rtol=0, atol=1e-5)


def test_repeat_latent_batch_and_mixed_strengths_edit_each_picture_as_if_alone(sd15):
    model = gaussian(sd15[0], True)
    _, latent = picture_latent(model)
    noisy = {s: SDEditAddNoise.execute(model, latent, s, 3)[0] for s in (0.4, 0.7)}
    alone = {s: SDEditFlowEdit.execute(model, prompt(M_SOURCE), prompt(M_TARGET), prompt(M_NEG), noisy[s], 10, 1.0,
                                       3.0, "normal", "proportional")[0]["samples"] for s in noisy}
    repeated = host_nodes.RepeatLatentBatch().repeat(noisy[0.4], 2)[0]
    mixed_batch = host_node(LatentBatch, noisy[0.4], noisy[0.7])[0]
    for batch, expected, levels in ((repeated, [alone[0.4]] * 2, 4), (mixed_batch, [alone[0.4], alone[0.7]], 7)):
        out, trajectory = SDEditFlowEdit.execute(model, prompt(M_SOURCE), prompt(M_TARGET), prompt(M_NEG), batch, 10,
                                                 1.0, 3.0, "normal", "proportional")
        torch.testing.assert_close(out["samples"], torch.cat(expected), rtol=1e-6, atol=1e-5)
        assert trajectory["samples"].shape[0] == 2 * levels  # step-major over the longest run (strength x 10 levels)
    assert float((alone[0.4] - alone[0.7]).abs().max()) > 0.1


def test_tiled_flowedit_is_untiled_flowedit_on_a_model_of_each_cell(sd15):
    shapes = []
    model = gaussian(sd15[0], True)
    recording = model.clone()
    inner = recording.model_options["model_function_wrapper"]

    def record(apply_model, args):
        shapes.append(tuple(args["input"].shape))
        return inner(apply_model, args)
    recording.set_model_unet_function_wrapper(record)
    _, latent = picture_latent(model)
    untiled = flowedit(model, latent)[0]["samples"]
    tiled = flowedit(recording, latent, tiling="on", tile_size=48, tile_overlap=16)[0]["samples"]
    assert shapes and all(s[-2:] == (6, 6) for s in shapes), "every model call sees tiles"
    torch.testing.assert_close(tiled, untiled, rtol=1e-6, atol=1e-5)


# --- the real SD1.5 U-Net and VAE: identity, the kept pixels, crop_to_mask, tiling --------------------------------

@pytest.fixture(scope="module")
def prompts(sd15):
    encode = host_nodes.CLIPTextEncode().encode
    return [encode(sd15[1], text)[0] for text in ("photo of a green apple", "photo of a red apple", "blurry")]


def real_chain(sd15, prompts, image, target=1, **encode_and_tiling):
    model, _, vae = sd15
    tiling = {k: encode_and_tiling.pop(k) for k in list(encode_and_tiling) if k.startswith("til")}
    latent = SDEditEncode.execute(image, vae, **encode_and_tiling)[0]
    noisy = SDEditAddNoise.execute(model, latent, 0.6, 5)[0]
    out = SDEditFlowEdit.execute(model, prompts[0], prompts[target], prompts[2], noisy, 5, 5.0, 5.0, "normal",
                                 "proportional", **tiling)[0]
    return latent, out, SDEditDecode.execute(out, vae)[0]


def test_sd15_equal_prompts_give_the_input_and_a_mask_keeps_its_pixels(sd15, prompts):
    image, mask = picture(1), left_keep_mask(48)
    latent, same, _ = real_chain(sd15, prompts, image, target=0, mask=mask)
    assert torch.equal(same["samples"], latent["samples"])
    latent, out, decoded = real_chain(sd15, prompts, image, mask=mask)
    assert torch.equal(out["samples"][..., :6], latent["samples"][..., :6])
    assert torch.equal(decoded[:, :, :48], image[:, :, :48])
    assert float((decoded[:, :, 48:] - image[:, :, 48:]).abs().mean()) > 1e-3


def host_batching(model):
    """A clone whose cond batches go through the host's sampling_function hook: FlowEdit then runs each branch as
    the host runs one (two calls per level) instead of both in one call."""
    import comfy.samplers
    patched = model.clone()
    patched.model_options["sampler_calc_cond_batch_function"] = lambda a: comfy.samplers.calc_cond_batch(
        a["model"], a["conds"], a["input"], a["sigma"], a["model_options"])
    return patched


def test_sd15_one_call_per_level_is_the_two_branch_result(sd15, prompts):
    """The real U-Net: both branches batched in one call give what each branch run on its own gives (float32
    rounding of a batched call apart)."""
    model, _, vae = sd15
    latent = SDEditEncode.execute(picture(1), vae)[0]
    results = []
    for m in (model, host_batching(model)):
        noisy = SDEditAddNoise.execute(m, latent, 0.6, 5)[0]
        results.append(SDEditFlowEdit.execute(m, prompts[0], prompts[1], prompts[2], noisy, 5, 5.0, 7.0, "normal",
                                              "proportional")[0]["samples"])
    assert float((results[0] - latent["samples"]).abs().mean()) > 1e-3, "the prompts edit the picture"
    torch.testing.assert_close(results[0], results[1], rtol=1e-3, atol=1e-3)  # the rounding, times cfg, per level


def test_sd15_progress_bar_and_previews_every_level_and_cancel_within_one(sd15, prompts, monkeypatch):
    """The host's progress bar gets every level with a latent preview; Cancel stops FlowEdit after the level it
    was pressed in (one model call per level here: paper-like cfgs on both branches)."""
    import comfy.cli_args
    import comfy.utils
    model, _, vae = sd15
    monkeypatch.setattr(comfy.cli_args.args, "preview_method", comfy.cli_args.LatentPreviewMethod.Latent2RGB)
    updates = []
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK",
                        lambda value, total, preview, node_id=None: updates.append((value, total, preview)))
    latent = SDEditEncode.execute(picture(1), vae)[0]
    noisy = SDEditAddNoise.execute(model, latent, 0.6, 5)[0]
    SDEditFlowEdit.execute(model, prompts[0], prompts[1], prompts[2], noisy, 10, 5.0, 7.0, "normal", "proportional")
    assert [(v, t) for v, t, _ in updates] == [(i, 6) for i in range(1, 7)]  # round(0.6 x 10) levels
    assert all(p is not None and p[0] == "JPEG" and p[1].size[0] > 0 for _, _, p in updates)
    calls = cancelled(lambda patched: SDEditFlowEdit.execute(patched, prompts[0], prompts[1], prompts[2], noisy, 10,
                                                             5.0, 7.0, "normal", "proportional"), model, at_call=3)
    assert len(calls) == 3


def test_sd15_a_lora_reaches_both_branches(sd15, prompts):
    """A LoRA (the host's loader on a random LoRA of every attention query of the U-Net) patches the model both
    branches run: the edit changes, and equal prompts still give the input back."""
    import comfy.sd
    model, _, vae = sd15
    weights = {k: v for k, v in model.model.state_dict().items()
               if k.startswith("diffusion_model.") and k.endswith("attn1.to_q.weight")}
    assert weights
    g = torch.Generator().manual_seed(0)
    lora = {}
    for k, w in weights.items():
        name = "lora_unet_" + k[len("diffusion_model."):-len(".weight")].replace(".", "_")
        lora[f"{name}.lora_up.weight"] = torch.randn(w.shape[0], 4, generator=g)
        lora[f"{name}.lora_down.weight"] = torch.randn(4, w.shape[1], generator=g)
        lora[f"{name}.alpha"] = torch.tensor(4.0)
    patched = comfy.sd.load_lora_for_models(model, None, lora, 1.0, 0.0)[0]
    latent = SDEditEncode.execute(picture(1), vae)[0]
    outs = []
    for m, target in ((model, 1), (patched, 1), (patched, 0)):
        noisy = SDEditAddNoise.execute(m, latent, 0.6, 5)[0]
        outs.append(SDEditFlowEdit.execute(m, prompts[0], prompts[target], prompts[2], noisy, 5, 5.0, 5.0, "normal",
                                           "proportional")[0]["samples"])
    assert float((outs[0] - outs[1]).abs().mean()) > 1e-3, "the LoRA changed the edit"
    assert torch.equal(outs[2], latent["samples"]), "equal prompts: the input back, LoRA or not"


@pytest.fixture(scope="module")
def controlnet():
    """The small SD1.5 ControlNet through the loader ControlNetLoader calls."""
    import comfy.controlnet
    from harness import families
    net = comfy.controlnet.load_controlnet(str(families.ensure_sd15_controlnet()))
    assert type(net).__name__ == "ControlNet" and net.control_model is not None, "the host detected a ControlNet"
    return net


def control_rows(monkeypatch) -> list:
    """The rows of every ControlNet evaluation (the host's ControlNet.get_control), recorded."""
    import comfy.controlnet
    rows, get_control = [], comfy.controlnet.ControlNet.get_control

    def recording(self, x_noisy, *args, **kwargs):
        rows.append(x_noisy.shape[0])
        return get_control(self, x_noisy, *args, **kwargs)
    monkeypatch.setattr(comfy.controlnet.ControlNet, "get_control", recording)
    return rows


def apply_controlnet(net, first, second, hint):
    """The host's Apply ControlNet node on two conditionings: both carry one ControlNet object."""
    return host_nodes.ControlNetApplyAdvanced().apply_controlnet(first, second, net, hint, 1.0, 0.0, 1.0)


def test_sd15_a_controlnet_on_both_prompts_runs_with_both_branches_in_one_call(sd15, prompts, controlnet,
                                                                                 monkeypatch):
    """One Apply ControlNet on the source and target prompts: one ControlNet object, so the host's batching rule
    lets both branches share each level's call (the hint evaluated once for their 2 rows); the result is each
    branch run on its own, the hint changes the edit, and equal prompts under it still give the input back."""
    model, _, vae = sd15
    image = picture(1)
    latent = SDEditEncode.execute(image, vae)[0]
    source, target = apply_controlnet(controlnet, prompts[0], prompts[1], picture(3))
    rows = control_rows(monkeypatch)
    outs, hinted = [], []
    for m, conds in ((model, (source, target)), (host_batching(model), (source, target)), (model, prompts[:2])):
        rows.clear()
        noisy = SDEditAddNoise.execute(m, latent, 0.6, 5)[0]
        outs.append(SDEditFlowEdit.execute(m, *conds, prompts[2], noisy, 5, 5.0, 5.0, "normal",
                                           "proportional")[0]["samples"])
        hinted.append(list(rows))
    levels = 3  # round(0.6 x 5)
    assert hinted[0] == [2] * levels, "one evaluation of the hint per level, for both branches"
    assert hinted[1] == [1, 1] * levels and hinted[2] == [], "per branch: one each; none without a ControlNet"
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-3, atol=1e-3)
    assert float((outs[0] - outs[2]).abs().mean()) > 1e-3, "the ControlNet changed the edit"
    same, _ = apply_controlnet(controlnet, prompts[0], prompts[0], picture(3))
    noisy = SDEditAddNoise.execute(model, latent, 0.6, 5)[0]
    back = SDEditFlowEdit.execute(model, same, same, prompts[2], noisy, 5, 5.0, 5.0, "normal", "proportional")[0]
    assert torch.equal(back["samples"], latent["samples"])


def test_sd15_a_controlnet_on_the_target_alone_guides_the_target_branch(sd15, prompts, controlnet, monkeypatch):
    """Apply ControlNet on the target prompt and the negative, the source prompt left plain (the usual wiring to
    hold the edit to a hint): the prompts no longer share a call and each branch runs as the host runs one, so the
    hint is evaluated per level for the source branch's uncond (the negative carries it, as Denoise's would) and
    for the target branch's cond and uncond in one; it changes the edit."""
    model, _, vae = sd15
    latent = SDEditEncode.execute(picture(1), vae)[0]
    target, negative = apply_controlnet(controlnet, prompts[1], prompts[2], picture(3))
    rows = control_rows(monkeypatch)
    noisy = SDEditAddNoise.execute(model, latent, 0.6, 5)[0]
    guided = SDEditFlowEdit.execute(model, prompts[0], target, negative, noisy, 5, 5.0, 5.0, "normal",
                                    "proportional")[0]["samples"]
    plain = SDEditFlowEdit.execute(model, prompts[0], prompts[1], prompts[2], noisy, 5, 5.0, 5.0, "normal",
                                   "proportional")[0]["samples"]
    assert rows == [1, 2] * 3, "per level: the source branch's uncond, then the target branch's cond and uncond"
    assert float((guided - plain).abs().mean()) > 1e-3, "the ControlNet changed the edit"
    assert not torch.equal(guided, latent["samples"])
    with pytest.raises(ValueError, match="SDEdit 3 · FlowEdit: input 'target_positive' carries a ControlNet"):
        SDEditFlowEdit.execute(model, prompts[0], target, negative, noisy, 5, 5.0, 5.0, "normal", "proportional",
                               tiling="on")  # its hint covers the whole picture, not a tile


def test_sd15_crop_to_mask_edits_the_region_and_keeps_the_rest(sd15, prompts):
    image = picture(2, height=128, width=192)
    mask = torch.zeros(1, 128, 192)
    mask[:, 40:88, 64:128] = 1.0
    latent, out, decoded = real_chain(sd15, prompts, image, mask=mask, crop_to_mask=True, crop_size=64,
                                         crop_padding=8, crop_factor=1.0)
    assert pictures.carried(latent)[0].region is not None, "a crop, not the whole picture"
    keep = (mask == 0).expand(1, 128, 192)
    assert decoded.shape == image.shape and torch.equal(decoded[keep], image[keep])
    assert float((decoded[~keep] - image[~keep]).abs().mean()) > 1e-3


def test_sd15_tiled_keeps_its_pixels_across_tile_borders(sd15, prompts):
    image, mask = picture(1), left_keep_mask(48)
    latent, out, decoded = real_chain(sd15, prompts, image, mask=mask, tiling="on", tile_size=48, tile_overlap=16)
    _, untiled, _ = real_chain(sd15, prompts, image, mask=mask)
    assert torch.equal(decoded[:, :, :48], image[:, :, :48])
    assert not torch.equal(out["samples"][..., 6:], untiled["samples"][..., 6:]), "the U-Net saw tiles"


@pytest.mark.parametrize("mode", ["fill", "latent noise", "latent nothing"])
def test_a_replaced_masked_part_is_refused_by_name(sd15, prompts, mode):
    """masked_content replaces what the masked part starts from; FlowEdit edits from the source picture itself."""
    model, _, vae = sd15
    latent = SDEditEncode.execute(picture(1), vae, mask=left_keep_mask(48), masked_content=mode)[0]
    noisy = SDEditAddNoise.execute(model, latent, 0.6, 5)[0]
    with pytest.raises(ValueError, match=f"SDEdit 3 · FlowEdit: input 'noisy_latent' .* masked_content '{mode}'"):
        SDEditFlowEdit.execute(model, prompts[0], prompts[1], prompts[2], noisy, 5, 5.0, 5.0, "normal", "proportional")
