"""FlowEdit against Denoise (SDEdit): how much of the input's structure each keeps for how far it moves the picture
toward the target prompt (the paper's Fig. 7, in closed form), and what a level costs.

1. Closed form. Data of each prompt is Gaussian, N(m_prompt, s^2) per element (tests/test_flowedit.py): the
   denoiser is exact, so every number below is the method's own, not a network's. The input is a structured
   latent whose mean is the source prompt's; the target prompt's mean is another. For each strength 0.2-0.9:
   "moved" = (mean(result) - m_source) / (m_target - m_source) (1: the target's mean reached), "structure" =
   the correlation of the result with the input, means removed (1: every edge and shape kept). Denoise runs
   the target prompt (euler); FlowEdit the source and target prompts; both cfg 1, 50 steps, on an EPS (SD1.5)
   and a flow (shift 3) schedule.
2. Cost. The tiny random SD1.5 of the tests (CPU unless a GPU is present): seconds per level, model calls
   per level and rows per call, peak memory (CUDA only; on the CPU the process's peak RSS growth), Denoise and
   FlowEdit at equal steps.
Prints Markdown tables and writes docs/images/flowedit_structure.png.
Usage: COMFYUI_PATH=... .venv/bin/python -P bench/flowedit.py
"""
import pathlib
import resource
import statistics
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import harness  # noqa: E402

harness.setup_host()
harness.load_pack()

import comfy.model_management  # noqa: E402
import comfy.model_sampling  # noqa: E402
import comfy.samplers  # noqa: E402
import nodes as host_nodes  # noqa: E402
import torch  # noqa: E402
from sdedit_img2img.nodes.add_noise import SDEditAddNoise  # noqa: E402
from sdedit_img2img.nodes.denoise import SDEditDenoise  # noqa: E402
from sdedit_img2img.nodes.flowedit import SDEditFlowEdit  # noqa: E402

S, M_SOURCE, M_TARGET, SEED, STEPS = 0.8, 0.2, 0.9, 3, 50
STRENGTHS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
FIGURE = REPO / "docs" / "images" / "flowedit_structure.png"


def prompt(mean):
    return [[torch.full((1, 2, 768), float(mean)), {}]]


def gaussian(model, flow):
    patched = model.clone()
    if flow:
        ms = type("FlowSampling", (comfy.model_sampling.ModelSamplingDiscreteFlow, comfy.model_sampling.CONST), {})()
        ms.set_parameters(shift=3.0)
        patched.add_object_patch("model_sampling", ms)

    def ideal(apply_model, args):
        x, sigma = args["input"], args["timestep"].view(-1, 1, 1, 1)
        m = args["c"]["c_crossattn"][:, 0, 0].view(-1, 1, 1, 1)
        a = 1.0 - sigma if flow else torch.ones_like(sigma)
        return m + a * S ** 2 / (a ** 2 * S ** 2 + sigma ** 2) * (x - a * m)
    patched.set_model_unet_function_wrapper(ideal)
    return patched


def structured_input():
    """A latent (model space) with edges and shapes: mean M_SOURCE, spread S."""
    y, x = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    channels = [torch.sin(7 * x) * torch.cos(5 * y), (x > 0.4).float() - (y > 0.6).float(),
                torch.sin(13 * (x + y)), ((x - 0.5) ** 2 + (y - 0.5) ** 2 < 0.08).float()]
    z = torch.stack(channels).unsqueeze(0)
    z = (z - z.mean()) / z.std()
    return M_SOURCE + S * z


def measures(result, y):
    moved = float((result.mean() - M_SOURCE) / (M_TARGET - M_SOURCE))
    a, b = result - result.mean(), y - y.mean()
    return moved, float((a * b).sum() / (a.norm() * b.norm()))


def closed_form(model):
    rows = []
    for flow in (False, True):
        g = gaussian(model, flow)
        fmt = g.get_model_object("latent_format")
        y = structured_input()
        latent = {"samples": fmt.process_out(y)}
        for strength in STRENGTHS:
            with torch.inference_mode():
                noisy = SDEditAddNoise.execute(g, latent, strength, SEED)[0]
                sdedit = SDEditDenoise.execute(g, prompt(M_TARGET), prompt(0.0), noisy, STEPS, 1.0, "euler", "normal",
                                               "proportional")[0]
                flowedit = SDEditFlowEdit.execute(g, prompt(M_SOURCE), prompt(M_TARGET), prompt(0.0), noisy, STEPS,
                                                  1.0, 1.0, "normal", "proportional")[0]
            for method, out in (("Denoise (SDEdit)", sdedit), ("FlowEdit", flowedit)):
                rows.append(("flow (shift 3)" if flow else "EPS (SD1.5)", method, strength,
                             *measures(fmt.process_in(out["samples"]), y)))
    print("| schedule | method | strength | moved toward the target (0-1) | structure kept (correlation) |")
    print("|---|---|---|---|---|")
    for schedule, method, strength, moved, kept in rows:
        print(f"| {schedule} | {method} | {strength} | {moved:.3f} | {kept:.4f} |")
    return rows


def figure(rows):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, schedule in zip(axes, ("EPS (SD1.5)", "flow (shift 3)")):
        for method, style in (("Denoise (SDEdit)", "o--"), ("FlowEdit", "s-")):
            pts = [(r[3], r[4], r[2]) for r in rows if r[0] == schedule and r[1] == method]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=method)
            for moved, kept, strength in pts[::2]:
                ax.annotate(f"{strength}", (moved, kept), textcoords="offset points", xytext=(3, -10), fontsize=7)
        ax.set_title(schedule)
        ax.set_xlabel("moved toward the target prompt")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("structure kept (correlation with the input)")
    axes[0].legend(loc="lower left")
    fig.suptitle("Closed-form edit: FlowEdit keeps the structure at every edit size (labels: strength)", fontsize=10)
    fig.tight_layout()
    fig.savefig(FIGURE, dpi=110)
    print(f"\nfigure: {FIGURE.relative_to(REPO)}")


ROUNDS = 5


def cost(model, clip):
    encode = host_nodes.CLIPTextEncode().encode
    source, target, negative = (encode(clip, t)[0] for t in ("a photo of a cat", "a photo of a dog", ""))
    calls = []
    counted = model.clone()

    def count(apply_model, args):
        calls.append(args["input"].shape[0])
        return apply_model(args["input"], args["timestep"], **args["c"])
    counted.set_model_unet_function_wrapper(count)
    cuda = torch.cuda.is_available()
    device = "GPU: " + torch.cuda.get_device_name() if cuda else "CPU"
    print(f"\n| device | latent | method | steps run | s per level (median of {ROUNDS}) | × Denoise | model calls "
          "per level | rows per call | peak memory |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size in (64, 128):
        latent = {"samples": torch.randn(1, 4, size // 8, size // 8, generator=torch.Generator().manual_seed(1))}
        seen = {}
        with torch.inference_mode():
            noisy = SDEditAddNoise.execute(counted, latent, 0.6, SEED)[0]
            per_branch = counted.clone()  # the host's hook: each branch its own sampling_function, two calls
            per_branch.model_options["sampler_calc_cond_batch_function"] = lambda a: comfy.samplers.calc_cond_batch(
                a["model"], a["conds"], a["input"], a["sigma"], a["model_options"])
            methods = ("Denoise", "FlowEdit", "FlowEdit, a call per branch")
            for round_ in range(1 + ROUNDS):  # the first round warms up; then the methods interleaved
                for method in methods:
                    calls.clear()
                    if cuda:
                        torch.cuda.reset_peak_memory_stats()
                    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                    start = time.perf_counter()
                    if method == "Denoise":
                        SDEditDenoise.execute(counted, target, negative, noisy, 20, 5.0, "euler", "normal",
                                              "proportional")
                    else:
                        SDEditFlowEdit.execute(counted if method == "FlowEdit" else per_branch, source, target,
                                               negative, noisy, 20, 5.0, 5.0, "normal", "proportional")
                    seconds = time.perf_counter() - start
                    peak = f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB" if cuda else \
                        f"+{(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024:.0f} MiB peak RSS"
                    if round_:
                        seen.setdefault(method, []).append((seconds, list(calls), peak))
        levels = 12  # round(0.6 x 20)
        base = statistics.median(t for t, *_ in seen["Denoise"])
        for method, runs in seen.items():
            median = statistics.median(t for t, *_ in runs)
            _, sizes, peak = runs[-1]
            print(f"| {device} | {size}x{size} px | {method} | {levels} | {median / levels:.3f} | "
                  f"{median / base:.2f} | {len(sizes) / levels:.0f} | {max(sizes)} | {peak} |")
        comfy.model_management.soft_empty_cache()


def main():
    model, clip, _ = harness.load_checkpoint()[:3]
    rows = closed_form(model)
    figure(rows)
    cost(model, clip)


if __name__ == "__main__":
    main()
