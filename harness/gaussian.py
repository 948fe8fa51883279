"""SDEdit's closed form on Gaussian data, the one copy tests and bench/ share.

For data x0 ~ N(mu, tau^2 I) the ideal denoiser is E[x0 | x] = mu + a tau^2 / (a^2 tau^2 + sigma^2) (x - a mu)
(a = 1 on EPS models, a = 1 - sigma on flow models), and the probability-flow ODE keeps
(x - a mu) / sqrt(a^2 tau^2 + sigma^2) constant, so SDEdit of a noisy latent x at sigma0 must land on
mu + tau (x - a0 mu) / sqrt(a0^2 tau^2 + sigma0^2). The ideal denoiser replaces the U-Net through the host's
unet function wrapper; everything else is the pack's real chain on the host. Needs harness.setup_host() first.
"""
import torch

MU, TAU = 0.5, 0.8
STRENGTHS = [round(0.1 * i, 1) for i in range(1, 10)]
MODELS = ("eps", "flow")
# The accuracy targets of bench/schedule_error.py: every scheduler within 1.25x of normal but these, per model,
# and no cell more than 10 % worse than the host's own tail (`tail_schedule`).
EXEMPT = {"eps": {"linear_quadratic"}, "flow": {"karras", "exponential"}}
WITHIN_NORMAL, NO_WORSE_THAN_HOST_TAIL = 1.25, 1.10


def gaussian_model(model, kind: str = "eps"):
    """A clone of `model` (patched to a shift-3 rectified flow for "flow") with the ideal denoiser as its U-Net."""
    from comfy_extras.nodes_model_advanced import ModelSamplingSD3
    model = ModelSamplingSD3().patch(model, 3.0)[0] if kind == "flow" else model.clone()
    flow = kind == "flow"

    def ideal_denoiser(apply_model, args):  # x and sigma in, E[x0 | x] out (the host's convention)
        x, sigma = args["input"], args["timestep"].view(-1, 1, 1, 1)
        a = 1 - sigma if flow else torch.ones_like(sigma)
        return MU + a * TAU ** 2 / (a ** 2 * TAU ** 2 + sigma ** 2) * (x - a * MU)
    model.set_model_unet_function_wrapper(ideal_denoiser)
    return model


def exact_answer(x, sigma0, a0=1.0):
    """Where the probability-flow ODE takes the noisy latent `x` (model space) at `sigma0` to: SDEdit's answer."""
    return MU + TAU * (x - a0 * MU) / (a0 ** 2 * TAU ** 2 + sigma0 ** 2) ** 0.5


def relative_error(model, cond, schedule, scheduler, steps, strength, step_mode, seed=0, sampler="euler"):
    """SDEdit of a seeded Gaussian sample with `sampler` over `schedule(...)`'s sigmas, against the exact answer:
    mean|output - exact| / mean|exact - noisy|."""
    import comfy.model_sampling
    import comfy.samplers
    from sdedit_img2img.nodes import pictures
    from sdedit_img2img.nodes.add_noise import SDEditAddNoise
    from sdedit_img2img.nodes.engine import denoise
    fmt = model.get_model_object("latent_format")
    ms = model.get_model_object("model_sampling")
    y = MU + TAU * torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(1234))
    noisy = SDEditAddNoise.execute(model, {"samples": fmt.process_out(y)}, strength, seed)[0]
    sigma0 = pictures.carried(noisy)[0].sigma
    sigmas = schedule(ms, scheduler, steps, strength, sigma0, step_mode,
                      sampler in comfy.samplers.KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS)
    guider = comfy.samplers.CFGGuider(model)
    guider.set_conds(cond, cond)
    guider.set_cfg(1.0)
    out = fmt.process_in(denoise(guider, sampler, sigmas, noisy["samples"], seed)[0])
    x = fmt.process_in(noisy["samples"])
    a0 = 1 - sigma0 if isinstance(ms, comfy.model_sampling.CONST) else 1.0
    exact = exact_answer(x, sigma0, a0)
    return float((out - exact).abs().mean() / (exact - x).abs().mean())


def error_table(model, clip, steps=20):
    """{(kind, step_mode, scheduler, strength): (host's tail, pack's schedule)} relative errors, every host scheduler."""
    import comfy.samplers
    import nodes as host_nodes
    from sdedit_img2img.nodes import sdedit_math as sm
    cond = host_nodes.CLIPTextEncode().encode(clip, "")[0]
    table = {}
    for kind in MODELS:
        gm = gaussian_model(model, kind)
        for step_mode in sm.STEP_MODES:
            for scheduler in comfy.samplers.KSampler.SCHEDULERS:
                for s in STRENGTHS:
                    args = (scheduler, steps, s, step_mode)
                    table[kind, step_mode, scheduler, s] = (relative_error(gm, cond, sm.tail_schedule, *args),
                                                            relative_error(gm, cond, sm.sdedit_sigmas, *args))
    return table


def failures(table):
    """The cells that miss a target, as readable lines (empty when every target holds)."""
    bad = []
    for (kind, mode, scheduler, s), (host_tail, pack) in table.items():
        normal = table[kind, mode, "normal", s][1]
        if scheduler not in EXEMPT[kind] and pack > WITHIN_NORMAL * normal:
            bad.append(f"{kind}/{mode}/{scheduler}@{s}: {pack:.4f} > {WITHIN_NORMAL} x normal {normal:.4f}")
        if pack > NO_WORSE_THAN_HOST_TAIL * host_tail:
            bad.append(f"{kind}/{mode}/{scheduler}@{s}: {pack:.4f} > {NO_WORSE_THAN_HOST_TAIL} x the host's tail "
                       f"{host_tail:.4f}")
    return bad
