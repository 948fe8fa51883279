"""Flicker of a video edit: the whole video through the four nodes at once (a 5-D Wan latent) against
image-to-image on each frame alone (the same nodes and model, each frame a 1-frame video).

    COMFYUI_PATH=~/comfy/ComfyUI .venv/bin/python -P bench/flicker.py [--frames 9 13] [--strengths 0.3 0.5]
        [--steps 10] [--seed 3] [--out bench/results/flicker.md]

The model is the small random-weight Wan 2.1 text-to-video of harness/families.py (dim 128, one block, the full
Wan 2.1 VAE), loaded with the host's UNETLoader and VAELoader; conditioning is a seeded random context
[1, 8, 4096] (no text encoder). The input is a slow pan: 32 x 48 windows of
example_workflows/input/sdedit_example.png (scaled to 64 x 96), one pixel further right each frame.
Per-frame img2img uses the same seed on every frame (the usual way; a new seed per frame flickers more).

Measures, in 8-bit levels (0-255) over every pixel and RGB channel, on the unrounded outputs:
- change/frame: the mean of |x[f+1] - x[f]| over consecutive frames (the input's own: its motion);
- ratio: change/frame of the output over the input's own (1: as much frame-to-frame change as the input);
- excess: the mean of |(y[f+1] - y[f]) - (x[f+1] - x[f])|, the frame-to-frame change the edit adds or removes
  (0: the output moves exactly as the input does) - the flicker proper;
- edit: the mean of |y - x|, how far the output is from the input (a chain that edits less flickers less).
The random model's edits are noise-like, so the figures compare the two ways of running, not picture quality.
"""
import argparse
import pathlib
import platform
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the harness package

HEIGHT, WIDTH = 32, 48


def setup():
    import harness
    harness.setup_host()
    harness.load_pack()
    import folder_paths
    import nodes as host_nodes
    import torch
    from harness import families
    unet, vae = families.ensure_wan()
    for kind, path in (("diffusion_models", unet), ("vae", vae)):
        folder_paths.add_model_folder_path(kind, str(path.parent))
    model = host_nodes.UNETLoader().load_unet(unet.name, "default")[0]
    vae_model = host_nodes.VAELoader().load_vae(vae.name)[0]
    g = torch.Generator().manual_seed(1)
    conds = tuple([[torch.randn(1, 8, 4096, generator=g), {}]] for _ in range(2))
    return model, vae_model, conds


def pan(frames: int, torch):
    """IMAGE (frames, 32, 48, 3): a window panning right one pixel per frame over the example picture."""
    import numpy as np
    from PIL import Image
    source = Image.open(REPO / "example_workflows" / "input" / "sdedit_example.png").convert("RGB")
    picture = torch.from_numpy(np.asarray(source.resize((2 * WIDTH, 2 * HEIGHT), Image.LANCZOS),
                                          dtype=np.float32) / 255.0)
    top = HEIGHT // 2
    return torch.stack([picture[top:top + HEIGHT, f:f + WIDTH] for f in range(frames)])


def change_per_frame(x) -> float:
    """Mean |x[f+1] - x[f]| in 0-255 levels."""
    return float((x[1:, ..., :3] - x[:-1, ..., :3]).abs().mean()) * 255.0


def excess(y, x) -> float:
    """Mean |(y[f+1] - y[f]) - (x[f+1] - x[f])| in 0-255 levels: the frame-to-frame change the edit adds."""
    return float(((y[1:] - y[:-1]) - (x[1:] - x[:-1]))[..., :3].abs().mean()) * 255.0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, nargs="+", default=[9, 13])
    parser.add_argument("--strengths", type=float, nargs="+", default=[0.3, 0.5])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "bench" / "results" / "flicker.md")
    args = parser.parse_args()
    model, vae, conds = setup()
    import torch
    from sdedit_img2img.nodes.add_noise import SDEditAddNoise
    from sdedit_img2img.nodes.decode import SDEditDecode
    from sdedit_img2img.nodes.denoise import SDEditDenoise
    from sdedit_img2img.nodes.encode import SDEditEncode

    def chain(clip, strength):
        latent = SDEditEncode.execute(clip, vae)[0]
        noisy = SDEditAddNoise.execute(model, latent, strength, args.seed)[0]
        out = SDEditDenoise.execute(model, *conds, noisy, args.steps, 5.0, "euler", "normal", "proportional")[0]
        return SDEditDecode.execute(out, vae)[0]

    command = "COMFYUI_PATH=~/comfy/ComfyUI .venv/bin/python -P bench/flicker.py " + " ".join(sys.argv[1:])
    lines = [f"Machine: {platform.machine()}, shared 2-core CPU, {platform.platform()}; date "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; command: `{command.strip()}`.", "",
             f"Small random-weight Wan 2.1 (harness/families.py), {HEIGHT} x {WIDTH} px pan (1 px per frame), "
             f"euler, normal, {args.steps} steps (proportional), cfg 5, seed {args.seed}; 0-255 levels.", "",
             "| frames | strength | run | change/frame (input's own) | change/frame | ratio | excess | edit | time (s) |",
             "|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    print("\n".join(lines), flush=True)
    with torch.inference_mode():
        chain(pan(5, torch), 0.3)  # loads the weights
        for frames in args.frames:
            clip = pan(frames, torch)
            own = change_per_frame(clip)
            for strength in args.strengths:
                for name in ("video (one 5-D latent)", "each frame alone"):
                    start = time.perf_counter()
                    if name.startswith("video"):
                        out = chain(clip, strength)
                    else:
                        out = torch.cat([chain(clip[f:f + 1], strength) for f in range(frames)])
                    seconds = time.perf_counter() - start
                    assert out.shape == clip.shape, (out.shape, clip.shape)
                    moved = change_per_frame(out)
                    edit = float((out - clip)[..., :3].abs().mean()) * 255.0
                    lines.append(f"| {frames} | {strength:g} | {name} | {own:.2f} | {moved:.2f} | {moved / own:.2f} | "
                                 f"{excess(out, clip):.2f} | {edit:.2f} | {seconds:.1f} |")
                    print(lines[-1], flush=True)
    text = "# Flicker: the video chain against img2img on each frame alone\n\n" + "\n".join(lines) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
