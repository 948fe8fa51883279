"""What both generators share: paths, the checkpoint, prompts and sampler settings, colours, the font, the
drawing helpers of the thumbnails, and how each kind of file is written.

Nothing random is drawn except the "noise" speckles, which come from a fixed-seed random.Random, and
text uses Pillow's built-in font, so the same Pillow version gives the same bytes on any machine.
"""
from __future__ import annotations

import json
import math
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "example_workflows"
INPUT = EXAMPLES / "input"
API = EXAMPLES / "api"

SAMPLE = INPUT / "sdedit_example.png"  # the green apple: input of img2img, the sweep and the repeats
SAMPLE_SIZE = (512, 384)
THUMB_SIZE = (512, 384)

# ------------------------------------------------------------------------------ the workflows' settings

CHECKPOINT = "v1-5-pruned-emaonly-fp16.safetensors"
POSITIVE = "photo of perfect green apple with stem, water droplets, dramatic lighting"
NEGATIVE = "blurry, low quality"
# Denoise's settings (the sweep's too), in the order of the node's widgets.
SAMPLING = {"steps": 20, "cfg": 7, "sampler_name": "euler", "scheduler": "normal", "step_mode": "proportional"}
CORE = {"cnr_id": "comfy-core", "ver": "0.3.64"}  # the core nodes' properties
PACK_ID = "sdedit-img2img"  # the pack's nodes' cnr_id
FRONTEND_VERSION = "1.27.10"
# Node titles as the frontend gives them (the API prompt's _meta) where a node has no title of its own.
TITLES = {"CheckpointLoaderSimple": "Load Checkpoint", "CLIPTextEncode": "CLIP Text Encode (Prompt)",
          "LoadImage": "Load Image", "ImageScaleBy": "Upscale Image By", "LoadImageMask": "Load Image (as Mask)", "SaveImage": "Save Image",
          "SDEditEncode": "SDEdit 1 · Encode", "SDEditAddNoise": "SDEdit 2 · Add Noise",
          "SDEditSampler": "SDEdit 3 · Denoise", "SDEditDecode": "SDEdit 4 · Decode",
          "UNETLoader": "Load Diffusion Model", "CLIPLoader": "Load CLIP", "VAELoader": "Load VAE",
          "LoadVideo": "Load Video", "GetVideoComponents": "Get Video Components", "CreateVideo": "Create Video",
          "SaveVideo": "Save Video"}

# ------------------------------------------------------------------------------ colours and drawing

BG = (32, 34, 40)
BOX = (56, 60, 70)
BOX_EDGE = (110, 116, 130)
# (fill, edge) of each SDEdit step, the colours js/sdedit.js gives the four nodes on the canvas.
STEP_COLOURS = {1: ((59, 106, 150), (120, 170, 230)), 2: ((150, 102, 43), (220, 170, 100)),
                3: ((63, 128, 80), (130, 200, 140)), 4: ((123, 63, 150), (190, 140, 220))}
TEXT = (235, 238, 242)
DIM = (170, 176, 188)
ARROW = (200, 205, 215)


def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def noisy(img: Image.Image, amount: float, seed: int) -> Image.Image:
    """The picture as Add Noise leaves it: blended with fixed-seed Gaussian speckle."""
    rng = random.Random(seed)
    w, h = img.size
    src = img.convert("RGB").load()
    out = Image.new("RGB", (w, h))
    dst = out.load()
    for y in range(h):
        for x in range(w):
            px = src[x, y]
            dst[x, y] = tuple(
                max(0, min(255, round((1 - amount) * v + amount * (128 + 70 * rng.gauss(0, 1)))))
                for v in px)
    return out


def arrow(d: ImageDraw.ImageDraw, start: tuple[float, float], end: tuple[float, float],
          width: int = 3, head: float = 9) -> None:
    d.line([start, end], fill=ARROW, width=width)
    ang = math.atan2(end[1] - start[1], end[0] - start[0])
    left = (end[0] - head * math.cos(ang - 0.45), end[1] - head * math.sin(ang - 0.45))
    right = (end[0] - head * math.cos(ang + 0.45), end[1] - head * math.sin(ang + 0.45))
    d.polygon([end, left, right], fill=ARROW)


def box(d: ImageDraw.ImageDraw, xy: tuple[int, int, int, int], title: str, sub: str = "",
        step: int | None = None) -> None:
    fill, edge = STEP_COLOURS[step] if step else (BOX, BOX_EDGE)
    d.rounded_rectangle(xy, radius=9, fill=fill, outline=edge, width=2)
    x0, y0, x1, y1 = xy
    cx = (x0 + x1) / 2
    if sub:
        d.text((cx, y0 + (y1 - y0) * 0.38), title, font=font(16), fill=TEXT, anchor="mm")
        d.text((cx, y0 + (y1 - y0) * 0.72), sub, font=font(12), fill=DIM, anchor="mm")
    else:
        d.text((cx, (y0 + y1) / 2), title, font=font(16), fill=TEXT, anchor="mm")


def picture(canvas: Image.Image, d: ImageDraw.ImageDraw, pic: Image.Image,
            xy: tuple[int, int, int, int], caption: str) -> None:
    x0, y0, x1, y1 = xy
    canvas.paste(pic.convert("RGB").resize((x1 - x0, y1 - y0), Image.Resampling.LANCZOS), (x0, y0))
    d.rectangle(xy, outline=BOX_EDGE, width=2)
    d.text(((x0 + x1) / 2, y1 + 11), caption, font=font(12), fill=DIM, anchor="mm")


def blank_thumbnail(title: str, sub: str) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    """A blank thumbnail with its title and, under it, one line of explanation."""
    w, h = THUMB_SIZE
    img = Image.new("RGB", (w, h), BG)
    d = ImageDraw.Draw(img)
    d.text((w / 2, 24), title, font=font(24), fill=TEXT, anchor="mm")
    d.text((w / 2, 50), sub, font=font(12), fill=DIM, anchor="mm")
    return img, d


# ------------------------------------------------------------------------------ writing the files

def save_flat_png(img: Image.Image, path: Path) -> None:
    """A drawing of flat colours: reduced to 32 (no dithering) the PNG stays small; it is saved as plain RGB so
    that every reader (ComfyUI's LoadImage, numpy, tests) sees three channels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = img.quantize(colors=32, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).convert("RGB")
    flat.save(path, format="PNG", optimize=True)


def save_thumbnail(img: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="JPEG", quality=90, optimize=True)


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def report(paths: list[Path]) -> None:
    for p in paths:
        print(f"wrote {p.relative_to(ROOT)} ({p.stat().st_size} bytes)")
