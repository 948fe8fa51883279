"""Other model families through the four nodes, each a small random-weight model in the file layout the
host's own loaders detect (harness/families.py), loaded with the host's UNETLoader and VAELoader.

SD3 (rectified flow, shift 3, 16-channel latents): the chain runs, parity with the host's
SamplerCustomAdvanced, the ends of strength, a mask with a pixel-exact keep, and a grey map of one value that
is the plain chain at that strength. Wan 2.1 text-to-video (5-D latents, flow, shift 8): N frames in, N out for
any N, the keep exact in every frame, a per-frame mask, the ends of strength. Conditioning of each family's
shape (SD3: context 4096 and pooled 2048; Wan: context 4096) is made from seeded random tensors, so no big
text encoder is needed.
"""
import comfy.model_sampling
import comfy.samplers
import folder_paths
import nodes as host_nodes
import pytest
import torch
from harness import families
from helpers import host_custom_advanced, left_keep_mask, picture
from sdedit_img2img.nodes import sdedit_math as sm
from sdedit_img2img.nodes.add_noise import SDEditAddNoise
from sdedit_img2img.nodes.decode import SDEditDecode
from sdedit_img2img.nodes.denoise import SDEditDenoise
from sdedit_img2img.nodes.encode import SDEditEncode

SEED, STEPS, CFG = 11, 4, 3.0


def load(files, seed, pooled=None):
    """(model, vae, conds) from the (diffusion model, VAE) files, through the host's own loaders; conds: context
    [1, 8, 4096] and, where the family has one, a pooled vector of `pooled` values, seeded."""
    unet, vae = files
    for kind, path in (("diffusion_models", unet), ("vae", vae)):
        folder_paths.add_model_folder_path(kind, str(path.parent))
    model = host_nodes.UNETLoader().load_unet(unet.name, "default")[0]
    vae_model = host_nodes.VAELoader().load_vae(vae.name)[0]
    g = torch.Generator().manual_seed(seed)

    def cond():
        context = torch.randn(1, 8, 4096, generator=g)
        return [[context, {} if pooled is None else {"pooled_output": torch.randn(1, pooled, generator=g)}]]
    return model, vae_model, (cond(), cond())


@pytest.fixture(scope="module")
def sd3():
    return load(families.ensure_sd3(), 0, pooled=2048)


def chain(model, vae, conds, image, strength, seed=SEED, sampler_name="euler", **encode):
    latent = SDEditEncode.execute(image, vae, **encode)[0]
    noisy = SDEditAddNoise.execute(model, latent, strength, seed)[0]
    out = SDEditDenoise.execute(model, *conds, noisy, STEPS, CFG, sampler_name, "normal", "proportional")[0]
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

@pytest.fixture(scope="module")
def wan():
    return load(families.ensure_wan(), 1)


def video(frames, kind=1):
    return torch.cat([picture(kind + f, height=32, width=48) for f in range(frames)])


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
