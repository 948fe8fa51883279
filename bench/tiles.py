"""Tiled denoising (nodes/tiles.py): blending error, seams, time and model calls, blended vs sequential tiles.

    COMFYUI_PATH=~/comfy/ComfyUI .venv/bin/python -P bench/tiles.py [--sizes 256 512] [--tile 256]
        [--overlap 64] [--steps 20] [--strength 0.35] [--out FILE]

Runs SDEdit 2 · Add Noise and SDEdit 3 · Denoise in-process on the random-weight SD1.5 test checkpoint (CPU).

1. Blending error: with the closed-form Gaussian denoiser of tests/test_sdedit_gaussian.py (it acts on each
   latent element on its own), max |tiled - untiled| over max |untiled|: blending adds only float rounding.
2. Seams, with the random-weight U-Net (it mixes neighbours), on the denoised latent: for every latent column
   j, c[j] = mean over rows and channels of |l[:, j+1] - l[:, j]| (likewise rows); "border" = max of c at the
   columns/rows where a tile starts or ends (+-1 cell), "away" = max elsewhere (as bench/vae.py measures
   pixels); the means of c over the same lines, a finer reading of a seam. Three runs: untiled (the reference ratio), blended tiles (this pack), and sequential tiles (the
   Ultimate SD Upscale way: each tile noised and denoised alone, one after another, from the picture as the
   previous tiles left it, with the seed's own noise at the tile's size, pasted with a linear feather over
   the overlap).
3. Time and model calls (counted through a model_function_wrapper) per run.
"""
import argparse
import pathlib
import platform
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the harness package

MU, S = 0.5, 0.8


def setup():
    import harness
    harness.setup_host()
    harness.load_pack()
    from harness import checkpoint
    return harness.load_checkpoint(checkpoint.ensure_checkpoint())[:3]


def counted(model, calls: list, inner=None):
    patched = model.clone()

    def wrapper(apply_model, args):
        calls.append(tuple(args["input"].shape))
        if inner is not None:
            return inner(apply_model, args)
        return apply_model(args["input"], args["timestep"], **args["c"])
    patched.set_model_unet_function_wrapper(wrapper)
    return patched


def ideal_denoiser(apply_model, args):
    x, sigma = args["input"], args["timestep"].view(-1, 1, 1, 1)
    return MU + S ** 2 / (S ** 2 + sigma ** 2) * (x - MU)


def test_latent(cells, torch):
    """A smooth latent (VAE space), like an encoded photo: gradients and low-frequency waves."""
    y, x = torch.meshgrid(torch.linspace(0, 1, cells), torch.linspace(0, 1, cells), indexing="ij")
    chans = [torch.sin(6.1 * x + 2.3 * y), torch.cos(3.7 * y) * x, torch.cos(9.0 * x * y), torch.sin(5.0 * y) - x]
    return torch.stack(chans).unsqueeze(0) * 3.0


def borders(length, starts, size):
    edges = {e for s in starts for e in (s, s + size)}
    return {e for e in edges if 0 < e < length}


def seam(latent, tile, overlap, tiles):
    """(border max, away max, border mean, away mean) as in the module docstring, for a (1, C, H, W) latent."""
    p = latent[0]
    cols = (p[:, :, 1:] - p[:, :, :-1]).abs().mean(dim=(0, 1))
    rows = (p[:, 1:] - p[:, :-1]).abs().mean(dim=(0, 2))
    h, w = p.shape[-2:]
    near_c = {e - 1 + d for e in borders(w, tiles.axis_starts(w, tile, overlap), min(tile, w)) for d in (-1, 0, 1)}
    near_r = {e - 1 + d for e in borders(h, tiles.axis_starts(h, tile, overlap), min(tile, h)) for d in (-1, 0, 1)}
    b = [float(cols[i]) for i in range(len(cols)) if i in near_c] + [float(rows[i]) for i in range(len(rows)) if i in near_r]
    a = [float(cols[i]) for i in range(len(cols)) if i not in near_c] + [float(rows[i]) for i in range(len(rows)) if i not in near_r]
    return (max(b) if b else 0.0, max(a) if a else 0.0,
            sum(b) / len(b) if b else 0.0, sum(a) / len(a) if a else 0.0)


def sequential(model, conds, clean, strength, seed, steps, tile, overlap, torch, tiles, add_noise, denoise):
    """Ultimate SD Upscale's way in latent space: tile after tile, each noised and denoised alone from the
    latent as the earlier tiles left it, pasted with a linear feather over the overlap."""
    current = clean.clone()
    h, w = clean.shape[-2:]
    for y, x, th, tw in tiles.tile_grid(h, w, tile, overlap):
        part = {"samples": current[..., y:y + th, x:x + tw].clone()}
        noisy = add_noise.execute(model, part, strength, seed)[0]  # the seed's noise at the tile's size, as USDU
        done = denoise.execute(model, *conds, noisy, steps, 7.0, "euler", "normal", "proportional")[0]["samples"]
        ramp_y = torch.ones(th)
        ramp_x = torch.ones(tw)
        if y > 0:
            ramp_y[:overlap] = torch.linspace(0, 1, overlap + 2)[1:-1]
        if x > 0:
            ramp_x[:overlap] = torch.linspace(0, 1, overlap + 2)[1:-1]
        m = ramp_y[:, None] * ramp_x[None, :]
        region = current[..., y:y + th, x:x + tw]
        current[..., y:y + th, x:x + tw] = region * (1 - m) + done * m
    return current


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="picture sides in px")
    parser.add_argument("--tile", type=int, default=256, help="tile side in px")
    parser.add_argument("--overlap", type=int, default=64, help="tile overlap in px")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--strength", type=float, default=0.35)
    parser.add_argument("--no-sequential", action="store_true")
    parser.add_argument("--runs", nargs="+", default=["untiled", "blended", "one-per-call", "sequential"])
    parser.add_argument("--out", type=pathlib.Path)
    args = parser.parse_args()
    model, clip, _ = setup()
    import nodes as host_nodes
    import torch
    from sdedit_img2img.nodes import tiles
    from sdedit_img2img.nodes.add_noise import SDEditAddNoise
    from sdedit_img2img.nodes.denoise import SDEditDenoise
    torch.set_grad_enabled(False)
    encode = host_nodes.CLIPTextEncode().encode
    conds = (encode(clip, "photo of a green apple")[0], encode(clip, "blurry")[0])
    empty = encode(clip, "")[0]
    tile, overlap = args.tile // 8, args.overlap // 8
    tiling = {"tiling": "on", "tile_size": args.tile, "tile_overlap": args.overlap}
    gaussian = model.clone()
    gaussian.set_model_unet_function_wrapper(ideal_denoiser)
    lines = [f"Machine: {platform.machine()}, shared 2-core CPU, "
             f"{platform.platform()}; date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; random-weight "
             f"SD1.5 test checkpoint, fp32 on CPU; tile {args.tile} px, overlap {args.overlap} px, strength "
             f"{args.strength}, {args.steps} steps (proportional: {round(args.strength * args.steps)} run), euler, "
             "cfg 7 (Gaussian: cfg 1, empty prompt).", "",
             "| size | latent | tiles | run | model calls | time (s) | max abs error vs untiled (Gaussian) "
             "| border max | away max | border/away (max) | border/away (mean) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    with torch.inference_mode():
        warm = SDEditAddNoise.execute(model, {"samples": test_latent(8, torch)}, 0.5, 0)[0]
        SDEditDenoise.execute(model, *conds, warm, 2, 7.0, "euler", "normal", "proportional")  # loads the weights
        for size in args.sizes:
            cells = size // 8
            clean = test_latent(cells, torch)
            grid = tiles.tile_grid(cells, cells, tile, overlap)
            noisy_g = SDEditAddNoise.execute(gaussian, {"samples": clean}, args.strength, 3)[0]
            ref = SDEditDenoise.execute(gaussian, empty, empty, noisy_g, args.steps, 1.0, "euler", "normal",
                                        "proportional")[0]["samples"]
            got = SDEditDenoise.execute(gaussian, empty, empty, noisy_g, args.steps, 1.0, "euler", "normal",
                                        "proportional", **tiling)[0]["samples"]
            err = float((got - ref).abs().max()) / float(ref.abs().max())
            noisy = SDEditAddNoise.execute(model, {"samples": clean}, args.strength, 3)[0]
            runs = {"untiled": ("untiled", {}), "blended": ("blended tiles", tiling),
                    "one-per-call": ("blended, 1 tile per call", {**tiling, "tile_batch": 1}),
                    "sequential": ("sequential tiles (USDU)", None)}
            for name, extra in [runs[r] for r in args.runs if not (r == "sequential" and args.no_sequential)]:
                calls = []
                watched = counted(model, calls)
                start = time.perf_counter()
                if extra is None:
                    out = sequential(watched, conds, clean, args.strength, 3, args.steps, tile, overlap, torch,
                                     tiles, SDEditAddNoise, SDEditDenoise)
                else:
                    out = SDEditDenoise.execute(watched, *conds, noisy, args.steps, 7.0, "euler", "normal",
                                                "proportional", **extra)[0]["samples"]
                seconds = time.perf_counter() - start
                border, away, border_mean, away_mean = seam(out, tile, overlap, tiles)
                e = f"{err:.1e}" if name == "blended tiles" else ""
                lines.append(f"| {size}² | {cells}² | {len(grid)} | {name} | {len(calls)} | {seconds:.1f} | {e} | "
                             f"{border:.4f} | {away:.4f} | {border / away:.2f} | {border_mean / away_mean:.3f} |")
                print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
