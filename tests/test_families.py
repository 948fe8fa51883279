"""Other model families through the four nodes, each a small random-weight model in the file layout the
host's own loaders detect (harness/families.py), loaded with the host's UNETLoader and VAELoader.

SD3 (rectified flow, shift 3, 16-channel latents): the chain runs, parity with the host's
SamplerCustomAdvanced, the ends of strength, a mask with a pixel-exact keep, and a grey map of one value that
is the plain chain at that strength. Wan 2.1 text-to-video (5-D latents, flow, shift 8): N frames in, N out for
any N, the keep exact in every frame, a per-frame mask, the ends of strength.

One family at a time (a parametrized module fixture: each big model is torn down before the next is loaded):
SDXL (EPS, adm 2816), Flux.1 dev (flow with shift 1.15, guidance embedding, cfg 1), an SD1.5 inpainting UNet
(9 input channels, fed by the host's concat channels), SD2.x v-prediction (told from the weights), from ComfyUI 0.3.55
Qwen-Image (flow on the Wan 2.1 VAE: a picture is a 5-D latent of one frame) and, from 0.3.77, Z-Image (flow,
shift 3, cfg 1): the host detects the family, parity with SamplerCustomAdvanced, the ends of strength, a mask
with a pixel-exact keep, FlowEdit; for the inpainting model also the concat channels the host feeds it (the
keep mask and the clean latent from SDEdit's own mask; the host's InpaintModelConditioning's
`concat_latent_image`/`concat_mask`).

Conditioning of each family's shape (SD3: context 4096 and pooled 2048; Wan: context 4096; SDXL: context 2048,
pooled 1280 and the size keys; Flux: context 4096, pooled 768 and guidance; SD1.5: context 768; SD2: 1024;
Qwen-Image: 3584; Z-Image: 2560) is made from seeded random tensors, so no big text encoder is needed.
"""
from typing import Callable, NamedTuple

import comfy.model_sampling
import comfy.samplers
import comfy.supported_models
import folder_paths
import nodes as host_nodes
import pytest
import torch
from harness import families
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from helpers import host_custom_advanced, left_keep_mask, load_family, picture, video
from sdedit_img2img.nodes import sdedit_math as sm
from sdedit_img2img.nodes import routes, tiles
from sdedit_img2img.nodes.add_noise import SDEditAddNoise
from sdedit_img2img.nodes.decode import SDEditDecode
from sdedit_img2img.nodes.denoise import SDEditDenoise
from sdedit_img2img.nodes.encode import SDEditEncode
from sdedit_img2img.nodes.flowedit import SDEditFlowEdit

SEED, STEPS, CFG = 11, 4, 3.0


@pytest.fixture(autouse=True)
def records_its_family(request):
    """The junit property "family" (tools/compat.py counts the suite by it): the family whose model the test runs.
    Set as record_property sets it, without its warning under pytest's default junit_family (xunit2)."""
    names = [name for name in ("sd3", "wan") if name in request.fixturenames]
    if "family" in request.fixturenames:
        names.append(request.node.callspec.params["family"])
    if names:
        request.node.user_properties.append(("family", names[0]))


@pytest.fixture(scope="module")
def sd3():
    return load_family(families.ensure_sd3(), 0, pooled=2048)


def chain(model, vae, conds, image, strength, seed=SEED, sampler_name="euler", steps=STEPS, cfg=CFG, **encode):
    latent = SDEditEncode.execute(image, vae, **encode)[0]
    noisy = SDEditAddNoise.execute(model, latent, strength, seed)[0]
    out = SDEditDenoise.execute(model, *conds, noisy, steps, cfg, sampler_name, "normal", "proportional")[0]
    return latent, out, SDEditDecode.execute(out, vae)[0]


def test_the_host_loaders_detect_the_family(sd3):
    model, vae, _ = sd3
    assert type(model.model).__name__ == "SD3" and vae.latent_channels == 16
    ms = model.get_model_object("model_sampling")
    assert isinstance(ms, comfy.model_sampling.ModelSamplingDiscreteFlow) and ms.shift == pytest.approx(3.0)


@pytest.mark.parametrize("sampler_name", ["euler", "dpmpp_2m", "euler_ancestral"])
def test_parity_with_the_hosts_sampler_custom_advanced(sd3, sampler_name):
    model, vae, conds = sd3
    latent = SDEditEncode.execute(picture(1), vae)[0]
    noisy = SDEditAddNoise.execute(model, latent, 0.6, SEED)[0]
    ours = SDEditDenoise.execute(model, *conds, noisy, STEPS, CFG, sampler_name, "normal", "proportional")[0]
    ms = model.get_model_object("model_sampling")
    sigmas = sm.sdedit_sigmas(ms, "normal", STEPS, 0.6, sm.start_sigma(ms, 0.6), "proportional",
                              sampler_name in comfy.samplers.KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS)
    host = host_custom_advanced(model, conds, latent, sigmas, SEED, CFG, sampler_name)
    diff = float((ours["samples"] - host["samples"]).abs().max() / host["samples"].abs().max())
    assert diff <= 1e-5, diff


def test_strength_0_is_the_input_and_strength_1_forgets_it(sd3):
    model, vae, conds = sd3
    latent, out, _ = chain(model, vae, conds, picture(1), 0.0)
    assert torch.equal(out["samples"], latent["samples"]) and float(latent["samples"].std()) > 0.05  # a real latent
    one = chain(model, vae, conds, picture(1), 1.0)[1]["samples"]
    other = chain(model, vae, conds, picture(4), 1.0)[1]["samples"]
    torch.testing.assert_close(one, other, rtol=0, atol=1e-5)
    assert float((one - latent["samples"]).abs().mean()) > 0.05


def test_a_mask_keeps_its_pixels_exactly_and_edits_the_rest(sd3):
    model, vae, conds = sd3
    image, mask = picture(3), left_keep_mask(40)
    decoded = chain(model, vae, conds, image, 0.7, mask=mask)[2]
    keep = mask[0] == 0
    assert torch.equal(decoded[0][keep], image[0][keep])
    assert float((decoded[0][~keep] - image[0][~keep]).abs().mean()) > 0.02


def test_a_grey_map_of_one_value_is_the_plain_chain_at_that_strength(sd3):
    model, vae, conds = sd3
    latent = SDEditEncode.execute(picture(2), vae)[0]
    mapped = host_nodes.SetLatentNoiseMask().set_mask(latent, torch.full((1, 64, 96), 0.5))[0]
    outs = []
    for lat, strength in ((mapped, 0.8), (latent, 0.4)):
        noisy = SDEditAddNoise.execute(model, lat, strength, SEED)[0]
        outs.append(SDEditDenoise.execute(model, *conds, noisy, 10, CFG, "euler", "normal", "proportional")[0])
    assert torch.equal(outs[0]["samples"], outs[1]["samples"])


# --- Wan 2.1 text-to-video: 5-D latents, flow (shift 8); its VAE keeps 1 + 4k frames ----------------------

def test_the_host_loaders_detect_wan(wan):
    """UNETLoader made a Wan 2.1 text-to-video model of the file (not another family's): its classes, its flow
    schedule with shift 8, 16-channel 5-D latents, and the Wan VAE."""
    import comfy.latent_formats
    import comfy.supported_models
    model, vae, _ = wan
    assert type(model.model).__name__ == "WAN21" and type(model.model.model_config) is comfy.supported_models.WAN21_T2V
    ms = model.get_model_object("model_sampling")
    assert isinstance(ms, comfy.model_sampling.ModelSamplingDiscreteFlow) and isinstance(ms, comfy.model_sampling.CONST)
    assert float(ms.shift) == 8.0
    assert isinstance(model.get_model_object("latent_format"), comfy.latent_formats.Wan21)
    assert vae.latent_channels == 16 and vae.latent_dim == 3


@pytest.mark.parametrize("frames", [1, 5, 6, 9, 13])
@pytest.mark.parametrize("masked", [False, True])
def test_a_video_of_any_frame_count_comes_back_whole_and_kept_in_every_frame(wan, frames, masked):
    model, vae, conds = wan
    clip = video(frames)
    mask = torch.ones(1, 32, 48)
    mask[:, :, :24] = 0.0
    latent, out, decoded = chain(model, vae, conds, clip, 0.6, **({"mask": mask} if masked else {}))
    assert latent["samples"].ndim == 5
    assert decoded.shape == clip.shape, f"{frames} frames in, {decoded.shape[0]} out"
    if masked:
        keep = mask[0] == 0
        for f in range(frames):
            assert torch.equal(decoded[f][keep], clip[f][keep]), f"frame {f}: the kept half is the input's"
        assert float((decoded[:, ~keep] - clip[:, ~keep]).abs().mean()) > 0.02


def test_a_per_frame_mask_keeps_the_frames_it_says_whole(wan):
    model, vae, conds = wan
    clip = video(6)
    mask = torch.ones(6, 32, 48)
    mask[:3] = 0.0  # frames 0-2 kept whole
    decoded = chain(model, vae, conds, clip, 0.7, mask=mask)[2]
    assert decoded.shape == clip.shape
    assert torch.equal(decoded[:3], clip[:3])
    assert float((decoded[3:] - clip[3:]).abs().mean()) > 0.02


def test_video_strength_0_is_the_input_and_strength_1_forgets_it(wan):
    model, vae, conds = wan
    latent, out, _ = chain(model, vae, conds, video(5), 0.0)
    assert torch.equal(out["samples"], latent["samples"]) and float(latent["samples"].std()) > 0.05  # a real latent
    one = chain(model, vae, conds, video(5, 1), 1.0)[1]["samples"]
    other = chain(model, vae, conds, video(5, 4), 1.0)[1]["samples"]
    torch.testing.assert_close(one, other, rtol=0, atol=1e-5)
    assert float((one - latent["samples"]).abs().mean()) > 0.05


def test_video_parity_with_the_hosts_sampler_custom_advanced(wan):
    model, vae, conds = wan
    latent = SDEditEncode.execute(video(5), vae)[0]
    assert float(latent["samples"].std()) > 0.05  # the host does not shift an all-zero latent: not a test
    noisy = SDEditAddNoise.execute(model, latent, 0.5, SEED)[0]
    ours = SDEditDenoise.execute(model, *conds, noisy, STEPS, CFG, "euler", "normal", "proportional")[0]
    ms = model.get_model_object("model_sampling")
    sigmas = sm.sdedit_sigmas(ms, "normal", STEPS, 0.5, sm.start_sigma(ms, 0.5), "proportional", False)
    host = host_custom_advanced(model, conds, latent, sigmas, SEED, CFG, "euler")
    assert float((ours["samples"] - host["samples"]).abs().max() / host["samples"].abs().max()) <= 1e-5


# --- SDXL, Flux.1, SD1.5 inpainting, SD2-v, Qwen-Image, Z-Image: one family at a time -----------------------

class Family(NamedTuple):
    files: Callable  # harness.families.ensure_*: (diffusion model, VAE), built once
    seed: int  # of the conditioning
    context: int  # width of the text tokens
    pooled: int | None
    extra: dict  # further conditioning keys, as the family's own text encode node sets them
    model_class: str  # comfy.model_base class and comfy.supported_models class the host picks
    config_class: str
    sampling: tuple  # the classes model_sampling is an instance of (each of them)
    channels: int  # latent channels
    cfg: float
    samplers: tuple  # compared with SamplerCustomAdvanced (every host sampler: tests/test_editing.py, on SD1.5)
    concat_keys: tuple = ()  # inpainting models: the extra input channels the host feeds
    native_px: int = 1024  # the side the family was trained at: tile_size 0 tiles at it


FAMILY_H, FAMILY_W, FAMILY_STEPS = 32, 64, 3  # a 4 x 8 latent; strength 0.7 runs 2 of the 3 steps, 1 runs 3


EPS = (comfy.model_sampling.ModelSamplingDiscrete, comfy.model_sampling.EPS)
FAMILIES = {
    # CLIPTextEncodeSDXL's keys at its defaults; SDXL.encode_adm embeds them after the pooled output
    "sdxl": Family(families.ensure_sdxl, 2, 2048, 1280,
                   {"width": 1024, "height": 1024, "crop_w": 0, "crop_h": 0, "target_width": 1024,
                    "target_height": 1024}, "SDXL", "SDXL", EPS, 4, CFG, ("euler",)),
    # Flux.1 dev runs at cfg 1 with its guidance embedding (FluxGuidance's key)
    "flux": Family(families.ensure_flux, 3, 4096, 768, {"guidance": 3.5}, "Flux", "Flux",
                   (comfy.model_sampling.ModelSamplingFlux, comfy.model_sampling.CONST), 16, 1.0, ("euler",)),
    "sd15_inpaint": Family(families.ensure_sd15_inpaint, 4, 768, None, {}, "BaseModel", "SD15", EPS, 4, CFG,
                           ("euler", "euler_ancestral"), ("mask", "masked_image"), native_px=512),
    # SD2.x 768-v: the host tells v-prediction from the weights (SD20.model_type)
    "sd2v": Family(families.ensure_sd2v, 5, 1024, None, {}, "BaseModel", "SD20",
                   (comfy.model_sampling.ModelSamplingDiscrete, comfy.model_sampling.V_PREDICTION), 4, CFG,
                   ("euler", "dpmpp_2m"), native_px=768),
}


def host_reads_qwen_image_blocks() -> bool:
    """Whether the host's detection counts a Qwen-Image file's blocks (0.3.55 on). 0.3.50 builds all 60 whatever
    the file holds, so a one-block test model cannot be loaded there (a real Qwen-Image, with its 60, can)."""
    import comfy.model_detection
    meta = {"txt_norm.weight": (3584,), "img_in.weight": (3072, 64), "transformer_blocks.0.img_mod.1.weight": (1,)}
    config = comfy.model_detection.detect_unet_config({k: torch.empty(v, device="meta") for k, v in meta.items()}, "")
    return (config or {}).get("num_layers") == 1


if host_reads_qwen_image_blocks():  # flow (shift 1.15) on the Wan 2.1 VAE: a picture is a 5-D latent of one frame
    FAMILIES["qwen_image"] = Family(families.ensure_qwen_image, 6, 3584, None, {}, "QwenImage", "QwenImage",
                                    (comfy.model_sampling.ModelSamplingFlux, comfy.model_sampling.CONST), 16, CFG,
                                    ("euler",))
if hasattr(comfy.supported_models, "ZImage"):  # ComfyUI 0.3.77 on; Z-Image Turbo runs at cfg 1
    FAMILIES["z_image"] = Family(families.ensure_z_image, 7, 2560, None, {}, "Lumina2", "ZImage",
                                 (comfy.model_sampling.ModelSamplingDiscreteFlow, comfy.model_sampling.CONST), 16,
                                 1.0, ("euler",))


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request):
    """(spec, model, vae, conds) of one family; pytest tears it down before it loads the next family's."""
    spec = FAMILIES[request.param]
    return (spec, *load_family(spec.files(), spec.seed, spec.pooled, spec.context, spec.extra))


def family_picture(kind):
    return picture(kind, height=FAMILY_H, width=FAMILY_W)


def family_mask():
    """0 (keep) on the left half of the picture, 1 (edit) on the right: 4 of the 8 latent columns."""
    mask = torch.ones(1, FAMILY_H, FAMILY_W)
    mask[:, :, :FAMILY_W // 2] = 0.0
    return mask


def family_chain(spec, model, vae, conds, image, strength, **encode):
    return chain(model, vae, conds, image, strength, steps=FAMILY_STEPS, cfg=spec.cfg, **encode)


def parity(spec, model, conds, latent, strength, sampler_name):
    """Max relative difference between Add Noise + Denoise and the host's SamplerCustomAdvanced on `latent`."""
    noisy = SDEditAddNoise.execute(model, latent, strength, SEED)[0]
    ours = SDEditDenoise.execute(model, *conds, noisy, FAMILY_STEPS, spec.cfg, sampler_name, "normal",
                                 "proportional")[0]
    ms = model.get_model_object("model_sampling")
    sigmas = sm.sdedit_sigmas(ms, "normal", FAMILY_STEPS, strength, sm.start_sigma(ms, strength), "proportional",
                              sampler_name in comfy.samplers.KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS)
    assert len(sigmas) >= 3, "at least two steps run"
    host = host_custom_advanced(model, conds, latent, sigmas, SEED, spec.cfg, sampler_name)
    return float((ours["samples"] - host["samples"]).abs().max() / host["samples"].abs().max())


def test_the_host_loaders_detect_each_family(family):
    spec, model, vae, _ = family
    base = model.model
    assert type(base).__name__ == spec.model_class and type(base.model_config).__name__ == spec.config_class
    assert all(isinstance(model.get_model_object("model_sampling"), kind) for kind in spec.sampling)
    assert vae.latent_channels == spec.channels == model.get_model_object("latent_format").latent_channels
    assert tuple(base.concat_keys) == spec.concat_keys
    assert tiles.native_tile_px(model) == spec.native_px
    with safe_open(str(spec.files()[0]), "pt") as f:  # every weight of the file in the model, and no other
        file_keys = set(f.keys())
    # 0.3.77 to 0.7.0 also build NextDiT's top-level norm_final, which Z-Image never uses (0.8.0 dropped it)
    unused = {"norm_final.weight"} if spec.config_class == "ZImage" else set()
    assert file_keys == set(base.diffusion_model.state_dict()) - unused
    if spec.model_class == "SDXL":
        assert base.adm_channels == 2816
    if spec.model_class == "Flux":
        ms = model.get_model_object("model_sampling")
        assert ms.shift == pytest.approx(1.15) and base.diffusion_model.params.guidance_embed
    if spec.config_class in ("QwenImage", "ZImage"):  # the shift each family's release sets
        shift = {"QwenImage": 1.15, "ZImage": 3.0}[spec.config_class]
        assert float(model.get_model_object("model_sampling").shift) == pytest.approx(shift)
    if spec.concat_keys:
        assert base.diffusion_model.input_blocks[0][0].weight.shape[1] == 9


# by the host's model config: the name the canvas's step line quotes
STEP_LINE_NAMES = {"SDXL": "SDXL", "Flux": "Flux", "SD15": "SD1.5", "SD20": "SD2.x", "QwenImage": "Qwen-Image",
                   "ZImage": "Z-Image"}


TILED_2048 = {"tile_size": 0, "tile_overlap": 128, "tile_batch": 0, "width": 2048, "height": 2048}  # the model's tiles


def rewritten(spec, tmp_path, folder, name, edit) -> str:
    """`name`: the family's diffusion model file with its weights passed through `edit`, in the host's `folder`."""
    save_file(edit(load_file(str(spec.files()[0]))), str(tmp_path / name))
    folder_paths.add_model_folder_path(folder, str(tmp_path))
    return name


def test_the_step_plan_reads_each_familys_file_as_the_host_loads_it(family):
    """The canvas's step line for a graph that loads the family with UNETLoader (GET /sdedit/step_plan with
    `unet_name`): σ on the family's own schedule, not SD1.5's assumed one, and tile_size 0 at the family's
    native side (SD2.x: 768 where the host reads v-prediction from the file)."""
    spec, model, _, _ = family
    unet = spec.files()[0].name
    plan = routes.answer(0.6, 20, "proportional", unet_name=unet, tiling=TILED_2048)
    assert not plan["assumed"] and unet in plan["reason"], plan
    assert plan["schedule"] == STEP_LINE_NAMES[spec.config_class]
    assert plan["sigma"] == pytest.approx(sm.start_sigma(model.get_model_object("model_sampling"), 0.6), abs=1e-9)
    assert plan["tiles"]["tile_px"] == spec.native_px


@pytest.mark.parametrize("family", ["sd2v"], indirect=True)
def test_the_step_plan_reads_an_sd2_v_checkpoint_as_v_prediction(family, tmp_path):
    """The same UNet in a checkpoint's layout (`model.diffusion_model.` keys), picked in Load Checkpoint: the host
    tells v-prediction by one bias's values, which the route reads (and no weight): tiles at 768."""
    ckpt = rewritten(family[0], tmp_path, "checkpoints", "sd2v-ckpt.safetensors",
                     lambda weights: {f"model.diffusion_model.{k}": v for k, v in weights.items()})
    plan = routes.answer(0.6, 20, "proportional", ckpt_name=ckpt, tiling=TILED_2048)
    assert (plan["schedule"], plan["assumed"], plan["tiles"]["tile_px"]) == ("SD2.x", False, 768), plan


@pytest.mark.parametrize("family", ["sdxl"], indirect=True)
def test_the_step_plan_reads_an_edm_v_prediction_sdxls_own_sigmas(family, tmp_path):
    """An SDXL file with `edm_vpred.sigma_max`/`sigma_min` (CosXL-style): the host reads those values and samples
    on that EDM schedule; the step line quotes σ on it, as the host loads the file."""
    unet = rewritten(family[0], tmp_path, "diffusion_models", "sdxl-edm-v.safetensors", lambda weights: dict(
        weights, **{"edm_vpred.sigma_max": torch.tensor(120.0), "edm_vpred.sigma_min": torch.tensor(0.002)}))
    ms = host_nodes.UNETLoader().load_unet(unet, "default")[0].get_model_object("model_sampling")
    assert isinstance(ms, comfy.model_sampling.V_PREDICTION) and float(ms.sigma_max) == pytest.approx(120.0)
    plan = routes.answer(0.6, 20, "proportional", unet_name=unet)
    assert (plan["schedule"], plan["assumed"]) == ("SDXL", False), plan
    assert plan["sigma"] == pytest.approx(sm.start_sigma(ms, 0.6), rel=1e-6), plan
    eps = sm.start_sigma(family[1].get_model_object("model_sampling"), 0.6)  # the plain SDXL file's
    assert abs(plan["sigma"] - eps) > 0.1, (plan["sigma"], eps)


def test_each_family_matches_the_hosts_sampler_custom_advanced(family):
    spec, model, vae, conds = family
    latent = SDEditEncode.execute(family_picture(1), vae)[0]
    for sampler_name in spec.samplers:
        diff = parity(spec, model, conds, latent, 0.7, sampler_name)
        assert diff <= 1e-5, f"{sampler_name}: {diff}"


def test_each_family_strength_0_is_the_input_and_strength_1_forgets_it(family):
    spec, model, vae, conds = family
    latent, out, _ = family_chain(spec, model, vae, conds, family_picture(1), 0.0)
    assert torch.equal(out["samples"], latent["samples"]) and float(latent["samples"].std()) > 0.05  # a real latent
    one = family_chain(spec, model, vae, conds, family_picture(1), 1.0)[1]["samples"]
    other = family_chain(spec, model, vae, conds, family_picture(4), 1.0)[1]["samples"]
    torch.testing.assert_close(one, other, rtol=0, atol=1e-5)
    assert float((one - latent["samples"]).abs().mean()) > 0.05


def test_each_family_keeps_a_masks_pixels_exactly_and_edits_the_rest(family):
    spec, model, vae, conds = family
    image, mask = family_picture(3), family_mask()
    decoded = family_chain(spec, model, vae, conds, image, 0.7, mask=mask)[2]
    keep = mask[0] == 0
    assert decoded.shape == image.shape and torch.equal(decoded[0][keep], image[0][keep])
    assert float((decoded[0][~keep] - image[0][~keep]).abs().mean()) > 0.02


def seen_concat(model):
    """A clone of `model` that records the c_concat (the inpainting channels) of every model call."""
    seen = []
    patched = model.clone()

    def wrapper(apply_model, args):
        seen.append(args["c"]["c_concat"].clone())
        return apply_model(args["input"], args["timestep"], **args["c"])
    patched.set_model_unet_function_wrapper(wrapper)
    return patched, seen


@pytest.mark.parametrize("family", ["sd15_inpaint"], indirect=True)
def test_the_inpainting_model_gets_the_keep_mask_and_the_clean_latent_as_its_concat_channels(family):
    """Without inpaint conditioning the host fills the concat channels from the sampler's denoise mask (SDEdit's
    keep mask) and its latent image (the clean latent); without a mask, from ones and its blank image."""
    spec, model, vae, conds = family
    image, mask = family_picture(3), family_mask()
    patched, seen = seen_concat(model)
    latent, out, decoded = family_chain(spec, patched, vae, conds, image, 0.7, mask=mask)
    keep = mask[0] == 0
    assert seen and torch.equal(decoded[0][keep], image[0][keep])
    clean = model.get_model_object("latent_format").process_in(latent["samples"])
    cells = torch.ones(latent["samples"].shape[-2:])
    cells[:, :FAMILY_W // 2 // 8] = 0.0  # the keep columns, block-aligned
    for c in seen:
        assert c.shape[1] == 5
        assert torch.equal(c[:, 0], cells.expand_as(c[:, 0]))
        torch.testing.assert_close(c[:, 1:], clean.expand_as(c[:, 1:]), rtol=0, atol=1e-6)
    seen.clear()
    family_chain(spec, patched, vae, conds, image, 0.7)
    assert seen and all(torch.equal(c[:, :1], torch.ones_like(c[:, :1])) and
                        torch.equal(c[:, 1:], model.model.blank_inpaint_image_like(c[:, 1:])) for c in seen)


@pytest.mark.parametrize("family", ["sd15_inpaint"], indirect=True)
def test_the_hosts_inpaint_model_conditioning_with_sdedits_mask(family):
    """InpaintModelConditioning's concat_latent_image and concat_mask (the masked picture) reach the model:
    parity with SamplerCustomAdvanced on the same masked latent, the keep exact, and another result than
    without them."""
    spec, model, vae, conds = family
    image, mask = family_picture(3), family_mask()
    inpaint = host_nodes.InpaintModelConditioning().encode(*conds, image, vae, mask)[:2]
    latent = SDEditEncode.execute(image, vae, mask=mask)[0]
    assert parity(spec, model, inpaint, latent, 0.7, "euler") <= 1e-5
    _, out, decoded = family_chain(spec, model, vae, inpaint, image, 0.7, mask=mask)
    keep = mask[0] == 0
    assert torch.equal(decoded[0][keep], image[0][keep])
    plain = family_chain(spec, model, vae, conds, image, 0.7, mask=mask)[1]
    assert float((out["samples"] - plain["samples"]).abs().mean()) > 1e-3


# --- SDEdit 3 · FlowEdit on every family: it runs, equal prompts give the input back, a mask keeps its pixels ------

def flowedit_chain(model, vae, conds, image, cfg, steps, mask, same=False):
    """(clean latent, FlowEdit's latent, decoded, the levels it ran, its model calls) at strength 0.7; source
    conds[0], target conds[1] (or conds[0])."""
    calls = []
    counted = model.clone()
    counted.set_model_unet_function_wrapper(
        lambda apply, a: calls.append(a["input"].shape[0]) or apply(a["input"], a["timestep"], **a["c"]))
    latent = SDEditEncode.execute(image, vae, mask=mask)[0]
    noisy = SDEditAddNoise.execute(model, latent, 0.7, SEED)[0]
    out, trajectory = SDEditFlowEdit.execute(counted, conds[0], conds[0] if same else conds[1], conds[1], noisy, steps,
                                             cfg, cfg, "normal", "proportional")
    levels = trajectory["samples"].shape[0] // latent["samples"].shape[0]
    return latent, out, SDEditDecode.execute(out, vae)[0], levels, calls


def assert_flowedit_keeps_and_edits(model, vae, conds, image, mask, cfg, steps=FAMILY_STEPS):
    latent, same, *_ = flowedit_chain(model, vae, conds, image, cfg, steps, mask, same=True)
    assert torch.equal(same["samples"], latent["samples"]), "equal prompts and cfgs: the input back"
    _, out, decoded, levels, calls = flowedit_chain(model, vae, conds, image, cfg, steps, mask)
    rows = latent["samples"].shape[0] * (2 if cfg == 1.0 else 4)  # source and target, each with its uncond
    assert levels > 0 and calls == [rows] * levels, "source and target share one model call per level"
    keep = mask[0] == 0
    assert decoded.shape == image.shape
    for f in range(image.shape[0]):
        assert torch.equal(decoded[f][keep], image[f][keep]), f"frame {f}: the kept pixels are the input's"
    assert float((decoded[:, ~keep] - image[:, ~keep]).abs().mean()) > 1e-3, "the target prompt edits the rest"


def test_each_family_flowedit(family):
    spec, model, vae, conds = family
    assert_flowedit_keeps_and_edits(model, vae, conds, family_picture(3), family_mask(), spec.cfg)


def test_sd3_flowedit(sd3):
    model, vae, conds = sd3
    assert_flowedit_keeps_and_edits(model, vae, conds, picture(3), left_keep_mask(40), CFG, steps=4)


def test_wan_flowedit_on_a_6_frame_video(wan):
    model, vae, conds = wan
    mask = torch.ones(1, 32, 48)
    mask[:, :, :24] = 0.0
    assert_flowedit_keeps_and_edits(model, vae, conds, video(6), mask, CFG, steps=4)
