"""Accuracy per model call of each host scheduler, against SDEdit's closed form (no weights needed).

    python bench/schedule_error.py [--steps 20]     ->  prints and writes bench/results/schedule_error.md

For Gaussian data N(mu, tau^2) the ideal denoiser is known in closed form and the probability-flow ODE
keeps (x - a*mu) / sqrt(a^2 tau^2 + sigma^2) constant (a = 1 on EPS models, a = 1 - sigma on flow
models), so the exact SDEdit answer from the noisy latent is known. The ideal denoiser replaces the
U-Net of the test checkpoint through the host's unet function wrapper; everything else (Add Noise, the
host's CFG guider, Euler) is the pack's real chain. Error = mean|output - exact| / mean|exact - noisy|.
"Today" is the schedule every scheduler got before (the tail of the full schedule, first sigma replaced:
`tail_schedule`); "now" is `sdedit_sigmas`.
"""
import argparse
import datetime
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the harness package
import harness  # noqa: E402

MU, TAU = 0.5, 0.8
STRENGTHS = [round(0.1 * i, 1) for i in range(1, 10)]
MODELS = ("eps", "flow")
# The accuracy targets: every scheduler within 1.25x of normal but these, per model.
EXEMPT = {"eps": {"linear_quadratic"}, "flow": {"karras", "exponential"}}
WITHIN_NORMAL, NO_WORSE_THAN_TODAY = 1.25, 1.10


def gaussian_model(model, kind: str):
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


def relative_error(model, cond, schedule, scheduler, steps, strength, step_mode, seed=0, sampler="euler"):
    """SDEdit of a seeded Gaussian sample with `sampler` over `schedule(...)`'s sigmas, against the exact answer."""
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
    exact = MU + TAU * (x - a0 * MU) / (a0 ** 2 * TAU ** 2 + sigma0 ** 2) ** 0.5
    return float((out - exact).abs().mean() / (exact - x).abs().mean())


def error_table(model, clip, steps=20):
    """{(kind, step_mode, scheduler, strength): (today, now)} over every host scheduler."""
    from sdedit_img2img.nodes import sdedit_math as sm

    import nodes as host_nodes
    cond = host_nodes.CLIPTextEncode().encode(clip, "")[0]
    table = {}
    for kind in MODELS:
        gm = gaussian_model(model, kind)
        for step_mode in sm.STEP_MODES:
            for scheduler in comfy.samplers.KSampler.SCHEDULERS:
                for s in STRENGTHS:
                    args = (gm, cond, None, scheduler, steps, s, step_mode)
                    today = relative_error(*args[:2], sm.tail_schedule, *args[3:])
                    now = relative_error(*args[:2], sm.sdedit_sigmas, *args[3:])
                    table[kind, step_mode, scheduler, s] = (today, now)
    return table


def floor_sweep(model, clip, strengths=[i / 40 for i in range(1, 40)]):
    """{(kind, sampler): (cells changed, best, worst now / today)} of simple and sgm_uniform in "all" mode
    over many step counts and strengths: where `floored_schedule` changes their sigmas, how the error
    changes. Euler over 4-50 steps; dpm_2 (two model calls a step, penultimate level dropped) every third."""
    from sdedit_img2img.nodes import schedules
    from sdedit_img2img.nodes import sdedit_math as sm

    import nodes as host_nodes
    cond = host_nodes.CLIPTextEncode().encode(clip, "")[0]
    sweep = {}
    for kind in ("eps",):  # the flow model keeps the host's tail (floor_measured_on)
        gm = gaussian_model(model, kind)
        ms = gm.get_model_object("model_sampling")
        for sampler, steps in (("euler", range(4, 51)), ("dpm_2", range(4, 51, 3))):
            discard = sampler in comfy.samplers.KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS
            ratios = []
            for scheduler in schedules.FLOORED_IN_ALL:
                for n in steps:
                    for s in strengths:
                        sigma0 = sm.start_sigma(ms, s)
                        if torch.equal(sm.sdedit_sigmas(ms, scheduler, n, s, sigma0, "all", discard),
                                       sm.tail_schedule(ms, scheduler, n, s, sigma0, "all", discard)):
                            continue
                        today, now = (relative_error(gm, cond, schedule, scheduler, n, s, "all", sampler=sampler)
                                      for schedule in (sm.tail_schedule, sm.sdedit_sigmas))
                        ratios.append(now / today)
            sweep[kind, sampler] = (len(ratios), min(ratios, default=1.0), max(ratios, default=1.0))
    return sweep


def failures(table):
    """The cells that miss a target, as readable lines (empty when every target holds)."""
    bad = []
    for (kind, mode, scheduler, s), (today, now) in table.items():
        normal = table[kind, mode, "normal", s][1]
        if scheduler not in EXEMPT[kind] and now > WITHIN_NORMAL * normal:
            bad.append(f"{kind}/{mode}/{scheduler}@{s}: {now:.4f} > {WITHIN_NORMAL} x normal {normal:.4f}")
        if now > NO_WORSE_THAN_TODAY * today:
            bad.append(f"{kind}/{mode}/{scheduler}@{s}: {now:.4f} > {NO_WORSE_THAN_TODAY} x today {today:.4f}")
    return bad


def markdown(table, steps):
    lines = []
    for kind in MODELS:
        for mode in ("proportional", "all"):
            title = "SD1.5 discrete EPS schedule" if kind == "eps" else "flow-patched (ModelSamplingSD3, shift 3)"
            lines += [f"### {title}, step_mode {mode}", "",
                      "Relative error now (today) and now / normal at the same strength; "
                      "**bold**: the schedule changed.", "",
                      "| scheduler | " + " | ".join(f"s={s}" for s in STRENGTHS) + " |",
                      "|---|" + "---|" * len(STRENGTHS)]
            for scheduler in comfy.samplers.KSampler.SCHEDULERS:
                cells = []
                for s in STRENGTHS:
                    today, now = table[kind, mode, scheduler, s]
                    ratio = now / table[kind, mode, "normal", s][1]
                    text = f"{now:.4f} ({today:.4f}) {ratio:.2f}x"
                    cells.append(f"**{text}**" if now != today else text)
                note = " (exempt)" if scheduler in EXEMPT[kind] else ""
                lines.append(f"| {scheduler}{note} | " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--ckpt", help="checkpoint (default: the random-weight test checkpoint; only its "
                                       "model sampling and latent format matter here)")
    args = parser.parse_args()
    model, clip, _, ckpt = harness.load_checkpoint(args.ckpt)
    with torch.inference_mode():
        table = error_table(model, clip, args.steps)
        sweep = floor_sweep(model, clip)
    bad = failures(table)
    head = (f"# Schedule accuracy: error against the closed form, Euler, {args.steps} steps\n\n"
            f"Gaussian data N({MU}, {TAU}^2), ideal denoiser; error = mean|output - exact| / mean|exact - noisy|. "
            f"Targets: within {WITHIN_NORMAL}x of `normal` (exempt: EPS linear_quadratic, flow karras and "
            f"exponential), no cell more than {round((NO_WORSE_THAN_TODAY - 1) * 100)} % worse than today.\n\n"
            f"Date {datetime.date.today()}, checkpoint {ckpt.name} (its model sampling; the U-Net is replaced), "
            f"`python bench/schedule_error.py`. Targets: {'all hold' if not bad else 'MISSED: ' + '; '.join(bad)}\n\n")
    text = head + markdown(table, args.steps) + "\n### simple and sgm_uniform in `all` mode on SD1.5, 4-50 steps\n\n" + (
        "Strengths 0.025-0.975 in steps of 0.025; euler at every step count 4-50, dpm_2 at every third; over "
        "the cells where their grid is moved down to the model's lowest level, error now / today:\n\n"
        "| model | sampler | cells changed | best | worst |\n|---|---|---|---|---|\n") + \
        "".join(f"| {kind} | {sampler} | {n} | {lo:.3f}x | {hi:.3f}x |\n"
                for (kind, sampler), (n, lo, hi) in sweep.items())
    print(text)
    results = harness.REPO / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "schedule_error.md").write_text(text + "\n")
    return 1 if bad else 0


harness.setup_host()
harness.load_pack()
import comfy.model_sampling  # noqa: E402  (after the host is on sys.path)
import comfy.samplers  # noqa: E402
import torch  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
