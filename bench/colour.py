"""Colour drift of a masked edit, Decode's color_anchor off and on (nodes/colour.py).

    COMFYUI_PATH=~/comfy/ComfyUI .venv/bin/python -P bench/colour.py [--size 256] [--steps 10]

The picture is example_workflows/input/sdedit_example.png scaled to --size; the mask keeps the left half
and edits the right half. Two measures, in ΔE76 (CIE Lab distance; about 2 is just noticeable):
- rings: the mean colour of a ring 8 px wide just inside the mask's edge against that of the ring just
  outside it, after one edit at strength 0.6; the input's own value is the picture's own difference there.
  Also on a known drift: the input itself with a colour cast (Lab +6, +8, +10) in the edit region.
- drift: the edit region's mean colour against the input's there after 1, 5 and 10 repeats at strength 0.3
  (each repeat encodes the last output, noises it with a new seed, denoises and decodes it).
The model is the random-weight test checkpoint, so the edit itself is noise-like; what is measured is how
far its colours stray from the input's, which is what color_anchor acts on. Prints a Markdown table.
"""
import argparse
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import harness  # noqa: E402

harness.setup_host()
harness.load_pack()

import nodes as host_nodes  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from harness import checkpoint  # noqa: E402
from PIL import Image  # noqa: E402
from sdedit_img2img.nodes import colour  # noqa: E402
from sdedit_img2img.nodes.add_noise import SDEditAddNoise  # noqa: E402
from sdedit_img2img.nodes.decode import SDEditDecode  # noqa: E402
from sdedit_img2img.nodes.denoise import SDEditDenoise  # noqa: E402
from sdedit_img2img.nodes.encode import SDEditEncode  # noqa: E402

RING = 8


def mean_lab(image, where):
    return colour.srgb_to_lab(image[0][where]).mean(0)


def edit(model, conds, vae, image, mask, strength, seed, steps, anchor):
    latent = SDEditEncode.execute(image, vae, mask=mask)[0]
    noisy = SDEditAddNoise.execute(model, latent, strength, seed)[0]
    out = SDEditDenoise.execute(model, *conds, noisy, steps, 7.0, "euler", "normal", "proportional")[0]
    return SDEditDecode.execute(out, vae, color_anchor=anchor)[0]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    model, clip, vae = harness.load_checkpoint(checkpoint.ensure_checkpoint())[:3]
    conds = tuple(host_nodes.CLIPTextEncode().encode(clip, text)[0] for text in ("a photo", "blurry"))
    source = Image.open(REPO / "example_workflows" / "input" / "sdedit_example.png").convert("RGB")
    source = source.resize((args.size, args.size), Image.LANCZOS)
    image = torch.from_numpy(np.asarray(source, dtype=np.float32) / 255.0)[None]
    half = args.size // 2
    mask = torch.zeros(1, args.size, args.size)
    mask[:, :, half:] = 1.0
    edited = mask[0] > 0
    inside, outside = torch.zeros_like(edited), torch.zeros_like(edited)
    inside[:, half:half + RING], outside[:, half - RING:half] = True, True
    print("| color_anchor | measure | input's own | after |")
    print("|---|---|---|---|")
    with torch.inference_mode():
        own = float((mean_lab(image, inside) - mean_lab(image, outside)).norm())
        for anchor in (0.0, 1.0):
            out = edit(model, conds, vae, image, mask, 0.6, 0, args.steps, anchor)
            rings = float((mean_lab(out, inside) - mean_lab(out, outside)).norm())
            print(f"| {anchor:g} | ΔE, ring inside vs ring outside the edge (strength 0.6) | {own:.2f} | {rings:.2f} |")
        cast = image.clone()
        cast[0][edited] = colour.lab_to_srgb(colour.srgb_to_lab(image[0][edited]) + torch.tensor(
            [6.0, 8.0, 10.0], dtype=torch.float64)).float()
        for anchor in (0.0, 1.0):
            fixed = colour.anchor_colour(image, cast, edited[None], anchor)
            rings = float((mean_lab(fixed, inside) - mean_lab(fixed, outside)).norm())
            print(f"| {anchor:g} | ΔE, ring inside vs ring outside the edge (a known cast, no model) | {own:.2f} | "
                  f"{rings:.2f} |")
        for anchor in (0.0, 1.0):
            picture, drift = image, {}
            for k in range(1, 11):
                picture = edit(model, conds, vae, picture, mask, 0.3, k, args.steps, anchor)
                if k in (1, 5, 10):
                    drift[k] = float((mean_lab(picture, edited) - mean_lab(image, edited)).norm())
            line = ", ".join(f"{k}: {v:.2f}" for k, v in drift.items())
            print(f"| {anchor:g} | ΔE of the edit's mean from the input's after repeats at 0.3 ({line}) | 0 | "
                  f"{drift[10]:.2f} |")


if __name__ == "__main__":
    main()
