"""Encode's crop_to_mask against masked editing of the whole picture, side by side.

    python bench/regions.py [--ckpt PATH] [--runs 3] [--size 2048x1536 --mask 128 --crop 512]
        -> prints the table, writes bench/results/regions.md

A 2048x1536 picture with a 128x128 mask (feather 8), strength 0.5, 20 steps (proportional: 10 run), euler
(smaller with --size, --mask and --crop: on a 2-core CPU the whole picture's 256x192 latent through the test
model, whose attention runs at full latent resolution, takes hours):
- region: Encode(crop_to_mask, crop_size 512) -> Add Noise -> Denoise -> Decode;
- whole: the same chain with crop_to_mask off (the host's tiled VAE passes, as the pack uses them there).
One process, one model load; warm-up, then the chains alternate (region, whole, whole, region, ...): medians,
and the median of each round's paired ratio. Model calls and their latent shapes are recorded by a unet
function wrapper; peak memory is VmHWM reset before each chain (bench/native.py's measure).
Also measured on the region chain's output: pixels outside the mask against the input (bit for bit), the
seam (the largest jump between neighbouring pixels across the mask's edge, against the largest jump between
neighbours inside the edited part), and the region's latent against the plain chain run on the same crop
scaled the same way.
"""
import argparse
import datetime
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))  # bench/native.py
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the harness package
import harness  # noqa: E402
import native  # noqa: E402

SIZE, MASK, CROP = (2048, 1536), 128, 512
STRENGTH, STEPS, CFG, SEED, FEATHER = 0.5, 20, 7.0, 42, 8


def inputs():
    """A smooth picture (so its own neighbour differences are small and a seam would show) and a MASK x MASK
    square mask at about (0.58, 0.57) of it."""
    import torch
    w, h = SIZE
    y, x = torch.linspace(0, 1, h).view(h, 1), torch.linspace(0, 1, w).view(1, w)
    image = torch.stack([0.2 + 0.6 * x + 0 * y, 0.3 + 0.5 * y + 0 * x, 0.5 + 0.4 * x * y], dim=-1)[None]
    mask = torch.zeros(1, h, w)
    top, left = int(h * 0.57), int(w * 0.58)
    mask[:, top:top + MASK, left:left + MASK] = 1.0
    return image, mask


def chain(model, vae, conds, image, mask, crop: bool):
    from sdedit_img2img.nodes.add_noise import SDEditAddNoise
    from sdedit_img2img.nodes.decode import SDEditDecode
    from sdedit_img2img.nodes.denoise import SDEditDenoise
    from sdedit_img2img.nodes.encode import SDEditEncode
    latent = SDEditEncode.execute(image, vae, mask=mask, mask_feather=FEATHER, crop_to_mask=crop, crop_size=CROP)[0]
    noisy = SDEditAddNoise.execute(model, latent, STRENGTH, SEED)[0]
    out = SDEditDenoise.execute(model, *conds, noisy, STEPS, CFG, "euler", "normal", "proportional")[0]
    return latent, out, SDEditDecode.execute(out, vae)[0]


def seam(decoded, mask):
    """(largest neighbour jump across the mask's edge, largest inside the edited part): ratio <= 1, no seam."""
    import torch
    edit = mask[0] > 0
    jumps = []
    for dim in (0, 1):
        a, b = edit.narrow(dim, 0, edit.shape[dim] - 1), edit.narrow(dim, 1, edit.shape[dim] - 1)
        pixels = decoded[0]
        diff = (pixels.narrow(dim, 0, pixels.shape[dim] - 1) - pixels.narrow(dim, 1, pixels.shape[dim] - 1)).abs().amax(-1)
        jumps.append((diff[a != b].max(), diff[a & b].max()))
    return float(torch.stack([j[0] for j in jumps]).max()), float(torch.stack([j[1] for j in jumps]).max())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", help="an SD1.5 checkpoint (default: the random-weight test checkpoint)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per chain (default 3)")
    parser.add_argument("--size", default="2048x1536", help="picture WxH (default 2048x1536)")
    parser.add_argument("--mask", type=int, default=128, help="side of the square mask in pixels (default 128)")
    parser.add_argument("--crop", type=int, default=512, help="crop_size (default 512)")
    args = parser.parse_args()
    global SIZE, MASK, CROP
    SIZE, MASK, CROP = tuple(int(v) for v in args.size.split("x")), args.mask, args.crop
    import torch
    harness.setup_host()
    harness.load_pack()
    import nodes as host_nodes
    from harness import checkpoint
    from sdedit_img2img.nodes import regions
    from sdedit_img2img.nodes.add_noise import SDEditAddNoise
    from sdedit_img2img.nodes.denoise import SDEditDenoise
    from sdedit_img2img.nodes.encode import SDEditEncode
    from sdedit_img2img.nodes.image_size import to_working
    path = pathlib.Path(args.ckpt) if args.ckpt else checkpoint.ensure_checkpoint()
    model, clip, vae = harness.load_checkpoint(path)[:3]
    encode = host_nodes.CLIPTextEncode().encode
    conds = encode(clip, "a shiny red apple")[0], encode(clip, "blurry")[0]
    image, mask = inputs()
    with torch.inference_mode():
        counters = native.Counters(model, vae)
        shapes = []
        wrapped = counters.model

        def record(apply_model, a):
            shapes.append(tuple(a["input"].shape[-2:]))
            counters.unet.append(a["input"].shape[0])
            return apply_model(a["input"], a["timestep"], **a["c"])
        wrapped.set_model_unet_function_wrapper(record)
        runs = {"region": lambda: chain(wrapped, vae, conds, image, mask, True),
                "whole": lambda: chain(wrapped, vae, conds, image, mask, False)}
        seen = {}
        for name, run in runs.items():
            shapes.clear()
            run()
            seen[name] = sorted(set(shapes))
        summary = native.side_by_side(runs, counters, args.runs)
        latent, out, decoded = chain(model, vae, conds, image, mask, True)
        keep = (mask == 0).expand(*decoded.shape[:-1])
        outside_equal = torch.equal(decoded[keep], image[keep])
        across, inside = seam(decoded, mask)
        record0 = latent["sdedit_pictures"][0]
        scaled = to_working(regions.cut(image, record0.region), record0.geometry).contiguous()
        plain = SDEditEncode.execute(scaled, vae, mask=record0.working_mask[:, 0])[0]
        plain_out = SDEditDenoise.execute(model, *conds, SDEditAddNoise.execute(model, plain, STRENGTH, SEED)[0],
                                          STEPS, CFG, "euler", "normal", "proportional")[0]
        plain_diff = float((plain_out["samples"] - out["samples"]).abs().max())
    r, w = summary["region"], summary["whole"]
    lines = [
        f"# crop_to_mask against the whole picture ({datetime.date.today()}, {path.name}, CPU)",
        "",
        f"{SIZE[0]}x{SIZE[1]} picture, {MASK}x{MASK} mask (feather {FEATHER}), strength {STRENGTH}, {STEPS} steps "
        f"proportional, euler, cfg {CFG}; crop_size {CROP}. Medians of {args.runs} alternating runs after a warm-up.",
        "",
        "| chain | latent the model sees | model calls | s per image | peak RSS (MiB) | peak over the loaded model (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in (("region", r), ("whole", w)):
        lines.append(f"| {name} | {', '.join(f'{a}x{b}' for a, b in seen[name])} | {row['calls']} | "
                     f"{row['time']:.2f} | {row['peak'] / 1024:.0f} | {row['delta'] / 1024:.0f} |")
    lines += [
        "",
        f"- Time whole / region: **{w['time'] / r['time']:.1f}x** (medians), paired per round "
        f"{1 / summary['paired_ratio']:.1f}x. Target: at least 10x.",
        f"- Peak RSS, whole / region: {w['peak'] / r['peak']:.2f}x (the loaded model is most of both).",
        f"- Outside the mask, region output = input bit for bit: **{outside_equal}**.",
        f"- Seam: largest neighbour jump across the mask's edge {across:.4f}, inside the edited part {inside:.4f} "
        f"(ratio {across / inside:.2f}: below 1, the feathered edge jumps less than the edit's own content).",
        f"- The region's denoised latent against the plain chain on the same crop scaled the same way: "
        f"max |difference| {plain_diff:.3g}.",
    ]
    if SIZE != (2048, 1536):
        lines.append(f"- Run at {SIZE[0]}x{SIZE[1]} with a {MASK}x{MASK} mask and crop_size {CROP} instead of 2048x1536, "
                     "128x128 and 512: the same ratio of latent cells per model call, but the whole picture's "
                     "256x192 latent through the test model takes hours on a 2-core CPU.")
    text = "\n".join(lines) + "\n"
    print(text)
    (native.RESULTS / "regions.md").write_text(text)


if __name__ == "__main__":
    main()
