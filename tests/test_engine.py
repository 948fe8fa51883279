"""The sampling engine (nodes/engine.py) against the host code it mirrors: ContinueFromNoisyLatent.sample is the
host's KSAMPLER.sample with its start changed, so it must give the host's result where the two start alike, and
a change of the host's method under it must fail here (as diffusers' check_copies fails a `# Copied from`)."""
import ast
import hashlib
import inspect
import textwrap

import comfy.samplers
import pytest
import torch
from sdedit_img2img.nodes import engine
from helpers import left_keep_mask

H, W = 32, 48  # pixels: a 4 x 6 latent, a few model calls per run


def normalised_source(function) -> str:
    """The function's code as Python's AST prints it, without comments and layout: what a re-read must look at."""
    return ast.unparse(ast.parse(textwrap.dedent(inspect.getsource(function))))


def test_the_mirrored_host_method_is_the_one_recorded():
    digest = hashlib.sha256(normalised_source(comfy.samplers.KSAMPLER.sample).encode()).hexdigest()
    assert digest == engine.MIRRORED_KSAMPLER_SAMPLE, (
        "The host's comfy.samplers.KSAMPLER.sample changed. Re-read it against nodes/engine.py "
        "ContinueFromNoisyLatent.sample (which mirrors it with its start, seed wrap and `final` changed), carry "
        f"the change over, then record the new digest: MIRRORED_KSAMPLER_SAMPLE = \"{digest}\".")


def test_the_mirrored_host_cfg_path_is_the_one_recorded():
    from sdedit_img2img.nodes import flowedit
    digest = hashlib.sha256(normalised_source(comfy.samplers.sampling_function).encode()).hexdigest()
    assert digest == flowedit.MIRRORED_SAMPLING_FUNCTION, (
        "The host's comfy.samplers.sampling_function changed. Re-read it against nodes/flowedit.py "
        "FlowEditGuider.predict_noise (which runs it for the source and target branches in one calc_cond_batch), "
        f"carry the change over, then record the new digest: MIRRORED_SAMPLING_FUNCTION = \"{digest}\".")


def host_and_ours(model, conds, sampler_name, mask, seed=3, steps=4):
    """One run of the host's KSAMPLER and one of ContinueFromNoisyLatent started where the host starts, through the
    host's guider: (host result, ours, host callback steps, ours)."""
    guider = comfy.samplers.CFGGuider(model)
    guider.set_conds(*conds)
    guider.set_cfg(5.0)
    ms = model.get_model_object("model_sampling")
    latent_format = model.get_model_object("latent_format")
    clean = torch.randn(1, 4, H // 8, W // 8, generator=torch.Generator().manual_seed(1))
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(2))
    sigmas = comfy.samplers.calculate_sigmas(ms, "normal", 2 * steps)[steps:].float()
    host = comfy.samplers.sampler_object(sampler_name)
    # The host noises the clean latent itself (model space); ours is given that latent, as Add Noise makes it.
    start = latent_format.process_out(ms.noise_scaling(sigmas[0], noise, latent_format.process_in(clean)))
    runs = []
    for sampler in (host, engine.ContinueFromNoisyLatent.of(host, start)):
        steps_seen = []
        out = guider.sample(noise, clean, sampler, sigmas, denoise_mask=mask, seed=seed, disable_pbar=True,
                            callback=lambda step, x0, x, total: steps_seen.append((step, total)))
        runs.append((out, steps_seen))
    (host_out, host_steps), (ours, our_steps) = runs
    return host_out, ours, host_steps, our_steps


@pytest.mark.parametrize("sampler_name", ["euler", "euler_ancestral", "ddim", "dpmpp_2m_sde"])
@pytest.mark.parametrize("masked", [False, True], ids=["whole", "masked"])
def test_continuing_from_the_hosts_own_start_is_the_hosts_run(model, conds, sampler_name, masked):
    """ddim: the host's random inpaint noise (seed + 1); the SDE samplers: their noise from the seed; masked: the
    keep region re-noised by the host's KSamplerX0Inpaint from the same clean latent and noise."""
    mask = torch.nn.functional.interpolate(left_keep_mask(24)[:, None], size=(H // 8, W // 8)) if masked else None
    host, ours, host_steps, our_steps = host_and_ours(model, conds, sampler_name, mask)
    assert our_steps == host_steps, "the progress callback sees the host's steps"
    # Only the start differs by rounding: the host's start in model space, ours through the VAE space and back.
    assert float((ours - host).abs().max()) <= 1e-5 * float(host.abs().max()), sampler_name


def test_the_largest_seed_draws_what_the_host_draws_for_seed_minus_one(model, conds):
    """The one intended difference beside the start: the host draws ddim's inpaint noise from seed + 1, which
    overflows torch's generator at the largest seed the seed widget allows; ours wraps it to 0, the host's draw
    for seed -1. Both start from 0 here (no noise on a zero latent), so the results are equal bit for bit."""
    guider = comfy.samplers.CFGGuider(model)
    guider.set_conds(*conds)
    guider.set_cfg(5.0)
    start = torch.zeros(1, 4, H // 8, W // 8)
    mask = torch.ones(1, 1, H // 8, W // 8)
    mask[..., :3] = 0.0  # the keep region is re-noised with the drawn noise at every step
    sigmas = torch.tensor([2.0, 1.0, 0.0])

    def run(sampler, seed):
        return guider.sample(start, start, sampler, sigmas, denoise_mask=mask, seed=seed, disable_pbar=True)
    host = comfy.samplers.sampler_object("ddim")
    with pytest.raises(ValueError, match="Overflow"):
        run(host, 2**64 - 1)
    ours = run(engine.ContinueFromNoisyLatent.of("ddim", start), 2**64 - 1)
    assert torch.equal(ours, run(host, -1))
    assert not torch.equal(ours, run(engine.ContinueFromNoisyLatent.of("ddim", start), 7)), "the draw matters here"
