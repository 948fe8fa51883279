"""Accuracy per model call of each host scheduler, against SDEdit's closed form (no weights needed).

    python bench/schedule_error.py [--steps 20]     ->  prints and writes bench/results/schedule_error.md

For Gaussian data N(mu, tau^2) the exact SDEdit answer from the noisy latent is known in closed form
(harness/gaussian.py, shared with the tests). The ideal denoiser replaces the
U-Net of the test checkpoint through the host's unet function wrapper; everything else (Add Noise, the
host's CFG guider, Euler) is the pack's real chain. Error = mean|output - exact| / mean|exact - noisy|.
"today" in the table is the schedule every scheduler got before (the tail of the full schedule, first sigma replaced:
`tail_schedule`); "now" is `sdedit_sigmas`.
"""
import argparse
import datetime
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the harness package
import harness  # noqa: E402

from harness.gaussian import (EXEMPT, MODELS, MU, NO_WORSE_THAN_HOST_TAIL, STRENGTHS, TAU, WITHIN_NORMAL,  # noqa: E402
                              error_table, failures, gaussian_model, relative_error)


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
            f"exponential), no cell more than {round((NO_WORSE_THAN_HOST_TAIL - 1) * 100)} % worse than today.\n\n"
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
