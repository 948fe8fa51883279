"""Tiled denoising (nodes/tiles.py): blending error, seams, time and model calls, blended vs sequential tiles.

    COMFYUI_PATH=~/comfy/ComfyUI .venv/bin/python -P bench/tiles.py [--sizes 256 512] [--tile 256]
        [--overlap 64] [--steps 20] [--strength 0.35] [--out FILE]
    COMFYUI_PATH=~/comfy/ComfyUI .venv/bin/python -P bench/tiles.py --memory [--sizes 1024 2048]
        [--tile-batches 0 1 4] [--out FILE]

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
4. --memory: peak resident memory of the denoising and time per sampler step, at the node's defaults (tile
   the model's native 512 px, overlap 128 px), for each size untiled (up to --untiled-max) and at each
   tile_batch. Each case runs in a fresh subprocess of this script on a smooth latent of the size (no VAE
   pass, so the peak is the denoising's): the weights are loaded by a small warm-up run, VmHWM is reset, and
   one sampler step runs (--memory-steps at --strength: 3 at 0.35 runs one step; a 20-step run at 0.35 runs
   7 such steps, each the same work and the same memory). "above the model" = peak - resident memory before
   the step.
"""
import argparse
import json
import pathlib
import platform
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the harness package


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


def rss_kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def memory_case(size, per_call, steps, strength, tile_px=0, overlap_px=128):
    """One denoising at `size` px (per_call -1: untiled; tile_px 0: the model's native 512); prints RESULT {json}."""
    model, clip, _ = setup()
    import nodes as host_nodes
    import torch
    from sdedit_img2img.nodes import tiles
    from sdedit_img2img.nodes.add_noise import SDEditAddNoise
    from sdedit_img2img.nodes.denoise import SDEditDenoise
    torch.set_grad_enabled(False)
    encode = host_nodes.CLIPTextEncode().encode
    conds = (encode(clip, "photo of a green apple")[0], encode(clip, "blurry")[0])
    tiling = {} if per_call < 0 else {"tiling": "on", "tile_size": tile_px, "tile_overlap": overlap_px,
                                      "tile_batch": per_call}
    with torch.inference_mode():
        warm = SDEditAddNoise.execute(model, {"samples": test_latent(8, torch)}, 0.5, 0)[0]
        SDEditDenoise.execute(model, *conds, warm, 2, 7.0, "euler", "normal", "proportional")  # loads the weights
        noisy = SDEditAddNoise.execute(model, {"samples": test_latent(size // 8, torch)}, strength, 3)[0]
        calls = []
        watched = counted(model, calls)
        with open("/proc/self/clear_refs", "w") as f:  # VmHWM restarts from the current RSS
            f.write("5")
        base = rss_kib("VmRSS")
        start = time.perf_counter()
        SDEditDenoise.execute(watched, *conds, noisy, steps, 7.0, "euler", "normal", "proportional", **tiling)
        seconds = time.perf_counter() - start
    cells = size // 8
    grid = tiles.tile_grid(cells, cells, (tile_px or 512) // 8, overlap_px // 8) if per_call >= 0 else [None]
    print("RESULT " + json.dumps({"size": size, "per_call": per_call, "tiles": len(grid), "calls": len(calls),
                                  "largest_call": max(c[0] for c in calls), "seconds": seconds,
                                  "peak_gib": rss_kib("VmHWM") / 2 ** 20, "base_gib": base / 2 ** 20}), flush=True)


def emit(lines, out):
    """Prints the table and writes it to `out` (a path, or None)."""
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        out.write_text(text)


def memory(args):
    lines = [f"Machine: {platform.machine()}, shared 2-core CPU, {platform.platform()}; date "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; random-weight SD1.5 test checkpoint, fp32 on "
             f"CPU; tile {args.memory_tile or 512} px{' (the native size)' if not args.memory_tile else ''}, overlap "
             f"{args.memory_overlap} px, strength {args.strength}, "
             f"{args.memory_steps} steps (one sampler step runs), euler, cfg 7; a smooth latent, no VAE pass.", "",
             "| size | latent | run | tiles | model calls per step | largest call (latents) | time per step (s) "
             "| s per tile | peak RSS (GiB) | above the model (GiB) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for size in args.sizes:
        cases = ([-1] if size <= args.untiled_max else []) + args.tile_batches
        for per_call in cases:
            cmd = [sys.executable, "-P", __file__, "--memory-case", str(size), str(per_call),
                   str(args.memory_steps), str(args.strength), str(args.memory_tile), str(args.memory_overlap)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            found = [json.loads(x[7:]) for x in done.stdout.splitlines() if x.startswith("RESULT ")]
            if not found:
                raise RuntimeError(f"case {size} {per_call} failed:\n{done.stderr[-3000:]}")
            r = found[0]
            run = "untiled" if per_call < 0 else f"tiled, tile_batch {per_call or 'as memory allows'}"
            lines.append(f"| {size}² | {size // 8}² | {run} | {r['tiles']} | {r['calls']} | {r['largest_call']} | "
                         f"{r['seconds']:.1f} | {r['seconds'] / r['tiles']:.2f} | {r['peak_gib']:.2f} | "
                         f"{r['peak_gib'] - r['base_gib']:.2f} |")
            print(lines[-1], flush=True)
    emit(lines, args.out)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--memory", action="store_true", help="peak memory and time per step (4. above)")
    parser.add_argument("--memory-case", nargs=6, help=argparse.SUPPRESS)
    parser.add_argument("--memory-tile", type=int, default=0, help="tile px in --memory (0: the model's native)")
    parser.add_argument("--memory-overlap", type=int, default=128, help="overlap px in --memory")
    parser.add_argument("--tile-batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--untiled-max", type=int, default=1024, help="largest side run untiled in --memory")
    parser.add_argument("--memory-steps", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="picture sides in px")
    parser.add_argument("--tile", type=int, default=256, help="tile side in px")
    parser.add_argument("--overlap", type=int, default=64, help="tile overlap in px")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--strength", type=float, default=0.35)
    parser.add_argument("--no-sequential", action="store_true")
    parser.add_argument("--runs", nargs="+", default=["untiled", "blended", "one-per-call", "sequential"])
    parser.add_argument("--out", type=pathlib.Path)
    args = parser.parse_args()
    if args.memory_case:
        size, per_call, steps, strength, tile_px, overlap_px = args.memory_case
        return memory_case(int(size), int(per_call), int(steps), float(strength), int(tile_px), int(overlap_px))
    if args.memory:
        return memory(args)
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
    from harness.gaussian import gaussian_model
    gaussian = gaussian_model(model)  # the ideal denoiser of Gaussian data as the U-Net
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
    emit(lines, args.out)


if __name__ == "__main__":
    main()
