"""How much of a masked object survives SDEdit in each of Encode's masked_content modes, against strength; and the
time of the fill on a big picture next to one VAE pass.

Survival: the correlation, over the masked part, between what the run left there and the object itself, both taken
relative to the background under the object: corr(result - background, input - background). 1: the object is all
there; 0: nothing of it is left. "Gone at" is the lowest strength from which it stays below GONE.
- Closed form: the closed-form denoiser of Gaussian data (tests/test_sdedit_gaussian.py) on a model whose latent is
  the picture itself (the host's pixel_space VAE, ChromaRadiance's latent format, as bench/strength_map.py): measured
  on the pixels, no VAE round trip in between.
- SD1.5: the random-weight test checkpoint (U-Net and VAE random: its VAE is no image codec), so survival is measured
  on the latent: the masked cells of the result against those of the input's latent, both relative to the latent
  of the background alone.
The picture: a smooth background with a busy object (random pixels on stripes) in a box; the mask is that box.
Prints Markdown tables. Usage: COMFYUI_PATH=... .venv/bin/python -P bench/masked_content.py [--figure PATH]
"""
import argparse
import pathlib
import statistics
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import harness  # noqa: E402

harness.setup_host()
harness.load_pack()

import comfy.latent_formats  # noqa: E402
import nodes as host_nodes  # noqa: E402
import torch  # noqa: E402
from harness import checkpoint  # noqa: E402
from sdedit_img2img.nodes.add_noise import SDEditAddNoise  # noqa: E402
from sdedit_img2img.nodes.decode import SDEditDecode  # noqa: E402
from sdedit_img2img.nodes.denoise import SDEditDenoise  # noqa: E402
from sdedit_img2img.nodes.encode import SDEditEncode  # noqa: E402
from sdedit_img2img.nodes.fill import fill  # noqa: E402
from sdedit_img2img.nodes.masked_content import MODES  # noqa: E402
from sdedit_img2img.nodes.vae_passes import encode_pixels  # noqa: E402

MU, S = 0.5, 0.8
STRENGTHS = (0.0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 1.0)
SEEDS = (1, 2, 3)
# The U-Net of the test checkpoint costs seconds a step on a shared 2-core CPU: fewer strengths, one seed, 4 steps.
SD15_STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
SD15_SEEDS = (1,)
GONE = 0.1


def scene(size: int, box: tuple[int, int]):
    """(picture, background, mask): (1, size, size, 3) in [0, 1], the object in rows and columns box[0]:box[1]."""
    y = torch.linspace(0, 1, size).view(size, 1)
    x = torch.linspace(0, 1, size).view(1, size)
    background = torch.stack([0.3 + 0.4 * x + 0.1 * y, 0.55 - 0.25 * y + 0 * x, 0.35 + 0.2 * x * y], -1)[None]
    a, b = box
    g = torch.Generator().manual_seed(0)
    stripes = (torch.arange(b - a) // 4 % 2).float().view(1, b - a, 1)
    picture = background.clone()
    picture[0, a:b, a:b] = 0.6 * torch.rand(b - a, b - a, 3, generator=g) + 0.4 * stripes
    mask = torch.zeros(1, size, size)
    mask[:, a:b, a:b] = 1.0
    return picture, background, mask


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / ((a * a).sum() * (b * b).sum()).clamp_min(1e-30).sqrt())


def run(model, cond, latent, strength, seed, steps, cfg):
    noisy = SDEditAddNoise.execute(model, latent, strength, seed)[0]
    return SDEditDenoise.execute(model, cond, cond, noisy, steps, cfg, "euler", "normal", "proportional")[0]


def survival_table(title, rows, strengths=STRENGTHS):
    print(f"\n{title}\n")
    print("| strength | " + " | ".join(MODES) + " |")
    print("|---|" + "---|" * len(MODES))
    for strength in strengths:
        print(f"| {strength} | " + " | ".join(f"{rows[mode][strength]:.3f}" for mode in MODES) + " |")
    gone = {mode: next((s for s in strengths if all(rows[mode][t] < GONE for t in strengths if t >= s)), None)
            for mode in MODES}
    print("| **gone at** | " + " | ".join("never" if gone[m] is None else f"**{gone[m]}**" for m in MODES) + " |")
    return gone


def closed_form(model, cond):
    pixel_model = model.clone()

    def ideal(apply_model, args):
        sigma = args["timestep"].view(-1, 1, 1, 1)
        return MU + S ** 2 / (S ** 2 + sigma ** 2) * (args["input"] - MU)
    pixel_model.set_model_unet_function_wrapper(ideal)
    pixel_model.add_object_patch("latent_format", comfy.latent_formats.ChromaRadiance())
    pixel_vae = host_nodes.VAELoader().load_vae("pixel_space")[0]
    picture, background, mask = scene(64, (16, 48))
    hole = mask[0] > 0
    rows = {mode: {} for mode in MODES}
    for mode in MODES:
        with torch.inference_mode():  # Encode is deterministic: once per mode
            latent = SDEditEncode.execute(picture, pixel_vae, mask=mask, masked_content=mode)[0]
        for strength in STRENGTHS:
            values = []
            for seed in SEEDS:
                with torch.inference_mode():
                    out = run(pixel_model, cond, latent, strength, seed, 20, 1.0)
                    result = SDEditDecode.execute(out, pixel_vae)[0]
                values.append(correlation((result - background)[0][hole], (picture - background)[0][hole]))
            rows[mode][strength] = statistics.mean(values)
    return rows


def sd15(model, cond, vae):
    picture, background, mask = scene(64, (16, 48))
    with torch.inference_mode():
        original = SDEditEncode.execute(picture, vae)[0]["samples"]
        behind = SDEditEncode.execute(background, vae)[0]["samples"]
    cells = (slice(None), slice(None), slice(2, 6), slice(2, 6))  # the latent cells wholly inside the mask
    rows = {mode: {} for mode in MODES}
    for mode in MODES:
        with torch.inference_mode():
            latent = SDEditEncode.execute(picture, vae, mask=mask, masked_content=mode)[0]
        for strength in SD15_STRENGTHS:
            values = []
            for seed in SD15_SEEDS:
                with torch.inference_mode():
                    out = run(model, cond, latent, strength, seed, 4, 1.0)["samples"]
                values.append(correlation((out - behind)[cells], (original - behind)[cells]))
            rows[mode][strength] = statistics.mean(values)
    return rows


def timing(vae):
    torch.manual_seed(0)
    big = torch.rand(1, 1536, 2048, 3)
    mask = torch.zeros(1, 1536, 2048)
    mask[:, 640:896, 896:1152] = 1.0
    fills = []
    for _ in range(5):
        start = time.perf_counter()
        fill(big, mask)
        fills.append(time.perf_counter() - start)
    small = torch.rand(1, 256, 256, 3)
    with torch.inference_mode():
        start = time.perf_counter()
        encode_pixels(vae, small)
        encode = time.perf_counter() - start
    per_mpx = encode / (256 * 256 / 1e6)
    print("\n| what | size | time (s) |")
    print("|---|---|---|")
    print(f"| fill (median of 5), 256² mask | 2048×1536 | {statistics.median(fills):.3f} |")
    print(f"| one VAE encode (plain), SD VAE, same run | 256² | {encode:.1f} |")
    print(f"| one VAE encode at 2048×1536 at the 256² rate ({per_mpx:.0f} s/Mpx; larger pictures cost more per "
          f"Mpx) | 2048×1536 | {per_mpx * 2048 * 1536 / 1e6:.0f} |")
    return statistics.median(fills), per_mpx * 2048 * 1536 / 1e6


def figure(path, closed, tiny):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, rows, strengths, title in ((axes[0], closed, sorted(closed[MODES[0]]), "closed-form Gaussian model (pixels)"),
                                       (axes[1], tiny, sorted(tiny[MODES[0]]), "random-weight SD1.5 (latent)")):
        for mode in MODES:
            ax.plot(strengths, [rows[mode][s] for s in strengths], marker="o", label=mode)
        ax.axhline(GONE, color="grey", linestyle=":", linewidth=1)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("strength")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("object left (correlation)")
    axes[1].legend(title="masked_content", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def tables_of(markdown: str) -> list:
    """The survival tables of a results file this script printed, each {mode: {strength: survival}}."""
    tables, rows = [], None
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[:2] == ["strength", MODES[0]]:
            rows = {mode: {} for mode in MODES}
            tables.append(rows)
        elif rows is not None and cells and cells[0].replace(".", "", 1).isdigit():
            for mode, value in zip(MODES, cells[1:]):
                rows[mode][float(cells[0])] = float(value)
        elif rows is not None and cells[0].startswith("**gone"):
            rows = None
    return tables


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--figure", type=pathlib.Path, help="also draw the survival curves to this PNG")
    parser.add_argument("--parts", default="closed,sd15,timing", help="which tables, comma-separated")
    parser.add_argument("--figure-from", type=pathlib.Path, help="draw --figure from the tables of a results file "
                                                                 "(bench/results/masked_content.md) and stop")
    args = parser.parse_args()
    if args.figure_from:
        closed, tiny = tables_of(args.figure_from.read_text())[:2]
        figure(args.figure, closed, tiny)
        return
    parts = args.parts.split(",")
    model, clip, vae = harness.load_checkpoint(checkpoint.ensure_checkpoint())[:3]
    with torch.inference_mode():
        cond = host_nodes.CLIPTextEncode().encode(clip, "")[0]
    closed = tiny = None
    if "closed" in parts:
        closed = closed_form(model, cond)
        survival_table("Closed-form Gaussian model, pixel space (64×64, mask 32×32, 20 steps, mean of 3 seeds)", closed)
    if "sd15" in parts:
        tiny = sd15(model, cond, vae)
        survival_table("Random-weight SD1.5, latent space (64×64, mask 32×32, 4 steps, cfg 1, seed 1)", tiny,
                       SD15_STRENGTHS)
    if "timing" in parts:
        timing(vae)
    if args.figure and closed and tiny:
        figure(args.figure, closed, tiny)


if __name__ == "__main__":
    main()
