"""The four nodes in-process on the real host runtime, with the tiny random-weight SD1.5 checkpoint
loaded by the host's own CheckpointLoaderSimple."""
import comfy.cli_args
import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.supported_models
import comfy.utils
import nodes as host_nodes
import pytest
import torch
from comfy_extras.nodes_model_advanced import ModelSamplingDiscrete, ModelSamplingSD3
from sdedit_img2img.nodes import pictures
from sdedit_img2img.nodes import sdedit_math as sm
from sdedit_img2img.nodes.add_noise import SDEditAddNoise
from sdedit_img2img.nodes.decode import SDEditDecode
from sdedit_img2img.nodes.denoise import SDEditDenoise
from sdedit_img2img.nodes.encode import SDEditEncode
from helpers import H, W, cancelled, counting, host_custom_advanced, picture, sdedit


@pytest.fixture(scope="module")
def clean_latent(sd15):
    return SDEditEncode.execute(picture(1), sd15[2])[0]



def max_rel_diff(a, b):
    return float((a - b).abs().max() / b.abs().max())


# --- loading ------------------------------------------------------------------------------------

def test_host_loader_detects_the_test_checkpoint_as_sd15(model):
    assert type(model.model.model_config) is comfy.supported_models.SD15


# --- steps 1 and 5 --------------------------------------------------------------------------------

def test_encode_and_decode_round_trip_shapes(sd15):
    vae = sd15[2]
    latent = SDEditEncode.execute(picture(0, batch=2), vae)[0]
    assert latent["samples"].shape == (2, 4, H // 8, W // 8)
    rgba = torch.cat([picture(0), torch.ones(1, H, W, 1)], dim=-1)
    alone = SDEditEncode.execute(rgba, vae)[0]["samples"]
    torch.testing.assert_close(alone, latent["samples"][:1], rtol=1e-4, atol=1e-4, msg="alpha is ignored")
    image = SDEditDecode.execute(latent, vae)[0]
    assert image.shape == (2, H, W, 3) and torch.isfinite(image).all()


# --- step 2 ---------------------------------------------------------------------------------------

def test_add_noise_uses_the_hosts_seeded_noise_and_the_models_noise_level(model, clean_latent):
    strength, seed = 0.45, 1234
    noisy = SDEditAddNoise.execute(model, clean_latent, strength, seed)[0]
    info = pictures.carried(noisy)[0]
    ms = model.get_model_object("model_sampling")
    assert info.sigma == pytest.approx(ms.percent_to_sigma(1 - strength))
    assert (info.strength, info.seed) == (strength, seed)

    fmt = model.get_model_object("latent_format")
    noise = comfy.sample.prepare_noise(clean_latent["samples"], seed)
    added = fmt.process_in(noisy["samples"]) - fmt.process_in(clean_latent["samples"])
    torch.testing.assert_close(added, info.sigma * noise, rtol=1e-4, atol=1e-4)


def test_add_noise_respects_batch_index(model, clean_latent):
    """A latent that is image 3 of a batch gets image 3's noise, as the host's KSampler gives it."""
    batch = {"samples": clean_latent["samples"].repeat(4, 1, 1, 1)}
    single = {"samples": clean_latent["samples"], "batch_index": [3]}
    noisy_batch = SDEditAddNoise.execute(model, batch, 0.5, 99)[0]["samples"]
    noisy_single = SDEditAddNoise.execute(model, single, 0.5, 99)[0]
    assert noisy_single["batch_index"] == [3]
    torch.testing.assert_close(noisy_single["samples"], noisy_batch[3:4])
    assert not torch.allclose(noisy_batch[0], noisy_batch[3])


def test_add_noise_keeps_what_else_the_latent_carries(model, clean_latent):
    latent = dict(clean_latent, custom_extra="kept")
    noisy = SDEditAddNoise.execute(model, latent, 0.5, 0)[0]
    assert noisy["custom_extra"] == "kept"
    assert [r.sigma for r in pictures.carried(latent)] == [None], "the input dict is not modified"


# --- strength 0 and 1 ---------------------------------------------------------------------------

def test_strength_zero_returns_the_latent_unchanged_without_calling_the_model(model, conds, clean_latent):
    counted, calls = counting(model)
    out = sdedit(counted, conds, clean_latent, 0.0)
    assert torch.equal(out["samples"], clean_latent["samples"])
    assert calls == []
    assert all(r.sigma is None for r in pictures.carried(out)), "the output is no longer noisy"


def test_strength_one_ignores_the_input_image_unlike_the_hosts_ksampler(model, conds, sd15):
    vae = sd15[2]
    a = SDEditEncode.execute(picture(1), vae)[0]
    b = SDEditEncode.execute(picture(4), vae)[0]
    assert not torch.allclose(a["samples"], b["samples"])
    out_a = sdedit(model, conds, a, 1.0, steps=4)["samples"]
    out_b = sdedit(model, conds, b, 1.0, steps=4)["samples"]
    assert torch.equal(out_a, out_b)
    # The host's KSampler at denoise 1 keeps a trace of the input: the property above is not free.
    host_a = host_nodes.common_ksampler(model, 7, 4, 7.0, "euler", "normal", *conds, a, denoise=1.0)[0]
    host_b = host_nodes.common_ksampler(model, 7, 4, 7.0, "euler", "normal", *conds, b, denoise=1.0)[0]
    assert not torch.allclose(host_a["samples"], host_b["samples"])


# --- step counts and model calls ---------------------------------------------------------------

@pytest.mark.parametrize("strength,steps,step_mode,expected", [
    (0.35, 10, "proportional", 4),   # 3.5 rounds up
    (0.6, 10, "proportional", 6),
    (0.04, 10, "proportional", 1),   # at least one step
    (0.35, 10, "all", 10),
    (1.0, 5, "all", 5),
])
def test_model_calls_are_the_steps_with_cond_and_uncond_batched(model, conds, clean_latent, strength, steps,
                                                               step_mode, expected):
    counted, calls = counting(model)
    out = sdedit(counted, conds, clean_latent, strength, steps=steps, step_mode=step_mode)
    assert len(calls) == expected
    assert set(calls) == {2}, "positive and negative go through the U-Net in one batch"
    assert torch.isfinite(out["samples"]).all()


# --- parity with the host's SamplerCustomAdvanced ----------------------------------------------

@pytest.mark.parametrize("sampler_name,scheduler,strength,step_mode", [
    ("euler", "normal", 0.5, "proportional"),
    ("euler_ancestral", "karras", 0.75, "proportional"),   # fresh noise per step: seeded like the host
    ("dpmpp_2m_sde", "exponential", 0.3, "all"),           # SDE: Brownian tree from the seed
    ("dpmpp_2m", "simple", 0.9, "proportional"),
    ("uni_pc", "normal", 0.6, "all"),
    ("euler", "sgm_uniform", 0.3, "all"),                 # its grid moved down (floored_schedule)
    ("dpm_2", "simple", 0.3, "all"),                      # the same, penultimate level discarded
])
def test_chain_equals_the_hosts_sampler_custom_advanced_on_the_clean_latent(model, conds, clean_latent,
                                                                            sampler_name, scheduler, strength,
                                                                            step_mode):
    seed, steps, cfg = 42, 8, 5.0
    ours = sdedit(model, conds, clean_latent, strength, seed, steps, cfg, sampler_name, scheduler, step_mode)
    ms = model.get_model_object("model_sampling")
    sigmas = sm.sdedit_sigmas(ms, scheduler, steps, strength, sm.start_sigma(ms, strength), step_mode,
                              sampler_name in comfy.samplers.KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS)
    host = host_custom_advanced(model, conds, clean_latent, sigmas, seed, cfg, sampler_name)
    assert max_rel_diff(ours["samples"], host["samples"]) <= 1e-5


def test_the_sampler_continues_from_the_latent_it_is_given(model, conds, clean_latent):
    """An edit made between Add Noise and Denoise reaches the result: nothing is recomputed."""
    noisy = SDEditAddNoise.execute(model, clean_latent, 0.5, 3)[0]
    edited = dict(noisy, samples=noisy["samples"] * 0.5)
    run = lambda latent: SDEditDenoise.execute(model, *conds, latent, 6, 7.0, "euler", "normal",  # noqa: E731
                                               "proportional")[0]["samples"]
    assert not torch.allclose(run(noisy), run(edited))


# --- other parametrisations of the model ---------------------------------------------------------

def test_v_prediction_model_matches_the_host(model, conds, clean_latent):
    v_model = ModelSamplingDiscrete().patch(model, "v_prediction", False)[0]
    ours = sdedit(v_model, conds, clean_latent, 0.6, seed=5, steps=6)
    ms = v_model.get_model_object("model_sampling")
    sigmas = sm.sdedit_sigmas(ms, "normal", 6, 0.6, sm.start_sigma(ms, 0.6))
    host = host_custom_advanced(v_model, conds, clean_latent, sigmas, 5, 7.0, "euler")
    assert max_rel_diff(ours["samples"], host["samples"]) <= 1e-5


def test_flow_matching_model_noises_by_interpolation_and_matches_the_host(model, conds, clean_latent, sd15):
    flow = ModelSamplingSD3().patch(model, 3.0)[0]
    ms = flow.get_model_object("model_sampling")
    fmt = flow.get_model_object("latent_format")
    strength, seed = 0.6, 11
    noisy = SDEditAddNoise.execute(flow, clean_latent, strength, seed)[0]
    sigma = pictures.carried(noisy)[0].sigma
    assert sigma == pytest.approx(ms.percent_to_sigma(1 - strength)) and 0 < sigma < 1
    noise = comfy.sample.prepare_noise(clean_latent["samples"], seed)
    expected = sigma * noise + (1 - sigma) * fmt.process_in(clean_latent["samples"])
    torch.testing.assert_close(fmt.process_in(noisy["samples"]), expected, rtol=1e-4, atol=1e-4)

    ours = SDEditDenoise.execute(flow, *conds, noisy, 6, 7.0, "euler", "normal", "proportional")[0]
    sigmas = sm.sdedit_sigmas(ms, "normal", 6, strength, sigma)
    host = host_custom_advanced(flow, conds, clean_latent, sigmas, seed, 7.0, "euler")
    assert max_rel_diff(ours["samples"], host["samples"]) <= 1e-5

    other = SDEditEncode.execute(picture(4), sd15[2])[0]
    full_a = sdedit(flow, conds, clean_latent, 1.0, steps=3)["samples"]
    full_b = sdedit(flow, conds, other, 1.0, steps=3)["samples"]
    assert torch.equal(full_a, full_b)


# --- progress, previews and cancel --------------------------------------------------------------

def test_progress_bar_gets_every_step_with_a_latent_preview(model, conds, clean_latent, monkeypatch):
    monkeypatch.setattr(comfy.cli_args.args, "preview_method", comfy.cli_args.LatentPreviewMethod.Latent2RGB)
    updates = []
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK",
                        lambda value, total, preview, node_id=None: updates.append((value, total, preview)))
    sdedit(model, conds, clean_latent, 0.5, steps=10)
    assert [(v, t) for v, t, _ in updates] == [(i, 5) for i in range(1, 6)]
    assert all(p is not None and p[0] == "JPEG" and p[1].size[0] > 0 for _, _, p in updates)


def test_cancel_stops_sampling_within_one_step(model, conds, clean_latent):
    calls = cancelled(lambda patched: sdedit(patched, conds, clean_latent, 1.0, steps=20), model, at_call=3)
    assert len(calls) == 3


# --- errors ---------------------------------------------------------------------------------------

def test_a_latent_that_skipped_add_noise_is_refused_with_the_fix(model, conds, clean_latent):
    with pytest.raises(ValueError) as error:
        SDEditDenoise.execute(model, *conds, clean_latent, 10, 7.0, "euler", "normal", "proportional")
    assert "noisy_latent" in str(error.value) and "SDEdit 2 · Add Noise" in str(error.value)


@pytest.mark.parametrize("node", ["add_noise", "sampler"])
def test_a_latent_of_another_model_family_is_refused_with_the_fix(model, conds, node):
    latent = {"samples": torch.zeros(1, 16, 8, 12)}  # an SD3/Flux-shaped latent for an SD1.5 model
    with pytest.raises(ValueError) as error:
        if node == "add_noise":
            SDEditAddNoise.execute(model, latent, 0.5, 0)
        else:
            noisy = {**latent, pictures.KEY: (pictures.Picture(row="", clean=latent["samples"], sigma=1.0, strength=0.5, seed=0),)}
            SDEditDenoise.execute(model, *conds, noisy, 10, 7.0, "euler", "normal", "proportional")
    message = str(error.value)
    assert "16 latent channels" in message and "expects 4" in message and "VAE" in message
