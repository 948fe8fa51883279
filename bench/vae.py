"""VAE encode/decode time, peak resident memory and tile seams, plain vs tiled (nodes/vae_passes.py).

    COMFYUI_PATH=~/comfy/ComfyUI .venv/bin/python -P bench/vae.py [--sizes 256 512 1024 2048]
        [--seam-sizes 1024 2048] [--plain-max 1024] [--out FILE]

Each case (pass, size, plain/tiled) runs in a fresh subprocess of this script, so its peak resident
memory (VmHWM) is its own (reset between the encode and the decode of a round trip). Plain passes
above --plain-max are skipped: they are what tiling exists to avoid. Uses the random-weight test checkpoint's full-size SD VAE on the CPU.

Seam metric, per output image: for every pixel column j, c[j] = mean over rows and channels of
|p[:, j+1] - p[:, j]| (likewise rows). "border" = max of c over the columns/rows where some tile of the
host's three tiled passes starts or ends; "away" = max of c elsewhere. A visible seam shows as
border/away well above the same ratio of the plain (untiled) pass on the same picture.
"""
import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the harness package


def _setup():
    """The host on the CPU and nodes/vae_passes.py alone (no other part of the pack in the measured memory)."""
    import harness
    harness.setup_host()
    import importlib.util
    spec = importlib.util.spec_from_file_location("sdedit_vae_passes", REPO / "nodes" / "vae_passes.py")
    passes = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(passes)
    return passes


def smooth_picture(size, torch):
    """A natural-like test picture: smooth gradients plus a few soft blobs and low-frequency waves."""
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    r = 0.5 + 0.3 * torch.sin(6.1 * x + 2.3 * y) * torch.cos(3.7 * y)
    g = 0.4 + 0.4 * torch.exp(-((x - 0.3) ** 2 + (y - 0.6) ** 2) / 0.05)
    b = 0.5 + 0.25 * torch.cos(9.0 * x * y) + 0.1 * torch.sin(17.0 * y)
    return torch.stack([r, g, b], dim=-1).clamp(0, 1).unsqueeze(0)


def hwm_bytes():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def rss_bytes():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def border_positions(length, tile, overlap):
    """Pixel positions where tiles of comfy.utils.tiled_scale_multidim start or end along one axis."""
    if length <= tile:
        return set()
    edges = set()
    for pos in range(0, length - overlap, tile - overlap):
        start = max(0, min(length - overlap, pos))
        edges.update({start, min(length, start + tile)})
    return {e for e in edges if 0 < e < length}


def seam_ratio(image, tile, overlap, torch):
    """(border, away) as defined in the module docstring, for (1, H, W, 3) image."""
    p = image[0]
    cols = (p[:, 1:] - p[:, :-1]).abs().mean(dim=(0, 2))
    rows = (p[1:] - p[:-1]).abs().mean(dim=(1, 2))
    border_c, border_r = set(), set()
    for tx, ty in ((tile, tile), (tile // 2, tile * 2), (tile * 2, tile // 2)):
        border_c |= border_positions(p.shape[1], tx, overlap)
        border_r |= border_positions(p.shape[0], ty, overlap)
    # a jump at edge e is between pixels e-1 and e: index e-1 of the difference arrays
    near_c = {e - 1 + d for e in border_c for d in (-1, 0, 1)}
    near_r = {e - 1 + d for e in border_r for d in (-1, 0, 1)}
    bc = [cols[i].item() for i in range(len(cols)) if i in near_c] + [rows[i].item() for i in range(len(rows)) if i in near_r]
    ac = [cols[i].item() for i in range(len(cols)) if i not in near_c] + [rows[i].item() for i in range(len(rows)) if i not in near_r]
    return max(bc) if bc else 0.0, max(ac) if ac else 0.0


def reset_peak():
    """Restarts VmHWM from the current RSS, so the next pass's peak is its own (Linux: clear_refs 5)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def run_case(op, size, mode, seams):
    passes = _setup()
    import torch
    import comfy.sd
    from harness import checkpoint
    torch.set_grad_enabled(False)
    ckpt = checkpoint.ensure_checkpoint()
    _, _, vae, _ = comfy.sd.load_checkpoint_guess_config(str(ckpt), output_vae=True, output_clip=False,
                                                         output_model=False)[:4]
    budget = 1 << 62 if mode == "plain" else 0
    picture = smooth_picture(size, torch)
    result = {"op": op, "size": size, "mode": mode}
    with torch.inference_mode():
        vae.encode(picture[:, :64, :64])  # warm-up: loads weights so the timing is the pass alone
        if seams:  # the round trip a user's picture takes: the pack's encode, then its decode, same mode
            reset_peak()
            base, start = rss_bytes(), time.perf_counter()
            latent = passes.encode_pixels(vae, picture, budget=budget)
            result.update(encode_seconds=time.perf_counter() - start, encode_peak=hwm_bytes(), encode_base=base)
        elif op == "decode":
            latent = torch.randn(1, 4, size // 8, size // 8)  # timing only: any latent will do
        reset_peak()
        base, start = rss_bytes(), time.perf_counter()
        if op == "encode" and not seams:
            out = passes.encode_pixels(vae, picture, budget=budget)
        else:
            out = passes.decode_latent(vae, latent, budget=budget)
        result.update(seconds=time.perf_counter() - start, peak_bytes=hwm_bytes(), base_bytes=base)
    if seams:
        result["border"], result["away"] = seam_ratio(out, passes.TILE_PIXELS, passes.OVERLAP_PIXELS, torch)
    print("RESULT " + json.dumps(result), flush=True)


def spawn(op, size, mode, seams=False, timeout=3600):
    cmd = [sys.executable, "-P", __file__, "--case", op, str(size), mode] + (["--seams"] if seams else [])
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"case {op} {size} {mode} failed:\n{done.stderr[-3000:]}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--case", nargs=3)
    parser.add_argument("--seams", action="store_true")
    parser.add_argument("--sizes", type=int, nargs="*", default=[256, 512, 1024, 2048])
    parser.add_argument("--modes", nargs="+", default=["plain", "tiled"])
    parser.add_argument("--seam-sizes", type=int, nargs="*", default=[1024, 2048])
    parser.add_argument("--plain-max", type=int, default=1024,
                        help="largest side run with plain passes in the seam table (default: the pack's budget)")
    parser.add_argument("--out", type=pathlib.Path)
    args = parser.parse_args()
    if args.case:
        return run_case(args.case[0], int(args.case[1]), args.case[2], args.seams)

    lines = [f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared), {platform.platform()}; "
             f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; checkpoint: random-weight SD1.5 "
             "test checkpoint (harness/checkpoint.py), full-size SD VAE, fp32 on CPU.", "",
             "| pass | size | mode | time (s) | s per Mpx | peak RSS (GB) | RSS before pass (GB) |",
             "|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for size in args.sizes:
        for op in ("encode", "decode"):
            for mode in [m for m in args.modes if m == "tiled" or size <= args.plain_max]:
                r = spawn(op, size, mode)
                line = (f"| {op} | {size}² | {mode} | {r['seconds']:.1f} | {r['seconds'] / (size * size / 1e6):.1f} "
                        f"| {r['peak_bytes'] / 1e9:.2f} | {r['base_bytes'] / 1e9:.2f} |")
                lines.append(line)
                print(line, flush=True)
    if args.seam_sizes:
        seam = ["", "Seams and memory of the round trip (the pack's encode, then its decode, in one mode) of the "
                "test picture; border/away as in bench/vae.py; peaks are of each pass alone:", "",
                "| size | mode | border max | away max | border/away | encode (s) | encode peak RSS (GB) "
                "| decode (s) | decode peak RSS (GB) | RSS before (GB) |", "|---|---|---|---|---|---|---|---|---|---|"]
        print("\n".join(seam), flush=True)
        for size in args.seam_sizes:
            # plain passes above the pack's budget are what tiling avoids; they would exhaust a small machine
            for mode in [m for m in args.modes if m == "tiled" or size <= args.plain_max]:
                r = spawn("decode", size, mode, seams=True, timeout=3 * 3600)
                line = (f"| {size}² | {mode} | {r['border']:.4f} | {r['away']:.4f} | {r['border'] / r['away']:.2f} "
                        f"| {r['encode_seconds']:.0f} | {r['encode_peak'] / 1e9:.2f} | {r['seconds']:.0f} "
                        f"| {r['peak_bytes'] / 1e9:.2f} | {r['base_bytes'] / 1e9:.2f} |")
                seam.append(line)
                print(line, flush=True)
        lines += seam
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
