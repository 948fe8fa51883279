"""Draws the example workflow's picture assets with Pillow, deterministically.

    python scripts/make_example_assets.py

writes
    example_workflows/input/sdedit_example.png   the sample input: an "amateur drawing" of a green
                                                 apple (512x384), the picture SDEdit turns into a photo
    example_workflows/sdedit_img2img.jpg         the template browser's thumbnail for
                                                 example_workflows/sdedit_img2img.json: the graph as a
                                                 diagram, with the sample image as its input
    example_workflows/sdedit_strength_sweep.json     the strength-sweep example (UI format), its API
    example_workflows/api/sdedit_strength_sweep.json twin and .jpg thumbnail (write_sweep_example)

Nothing random is drawn except the "noise" speckles, which come from a fixed-seed random.Random, and
text uses Pillow's built-in font, so the same Pillow version gives the same bytes on any machine.
"""
from __future__ import annotations

import json
import math
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "example_workflows" / "input" / "sdedit_example.png"
THUMB = ROOT / "example_workflows" / "sdedit_img2img.jpg"

SAMPLE_SIZE = (512, 384)
THUMB_SIZE = (512, 384)


# --------------------------------------------------------------------------- the sample input image

def wobbly_outline(cx: float, cy: float, rx: float, ry: float, n: int = 96) -> list[tuple[float, float]]:
    """An apple-shaped closed curve: an ellipse with a dimple on top, a slightly flat bottom and a
    hand-drawn wobble (fixed harmonics, so it is the same every time)."""
    pts = []
    for i in range(n):
        t = 2 * math.pi * i / n
        # Angle measured from the top (t=0 at the top, clockwise in image coordinates).
        s, c = math.sin(t), math.cos(t)
        r = 1.0
        r -= 0.16 * math.exp(-((t if t < math.pi else t - 2 * math.pi) ** 2) / 0.05)  # dimple at the stem
        r -= 0.05 * max(0.0, -c) ** 4                                                 # flatter bottom
        r += 0.018 * math.sin(5 * t + 0.7) + 0.012 * math.sin(9 * t + 2.1)            # the hand's wobble
        pts.append((cx + rx * r * s, cy - ry * r * c))
    return pts


def draw_sample() -> Image.Image:
    w, h = SAMPLE_SIZE
    img = Image.new("RGB", (w, h), (246, 243, 232))
    d = ImageDraw.Draw(img)

    # A table line and a crude shadow, as a child would add them.
    d.line([(0, 318), (w, 312)], fill=(205, 190, 160), width=4)
    d.ellipse((168, 296, 352, 334), fill=(222, 214, 196))

    # The apple: flat green body, darker outline, one light highlight.
    cx, cy, rx, ry = 256, 200, 112, 104
    body = wobbly_outline(cx, cy, rx, ry)
    d.polygon(body, fill=(122, 196, 72))
    # Shading on the right side: a darker oval, kept inside the apple's outline.
    inside = Image.new("L", (w, h), 0)
    ImageDraw.Draw(inside).polygon(body, fill=255)
    shade = Image.new("L", (w, h), 0)
    ImageDraw.Draw(shade).ellipse((cx - 10, cy - ry * 0.7, cx + rx * 1.3, cy + ry * 1.2), fill=255)
    img.paste((100, 172, 58), (0, 0), Image.composite(shade, inside.point(lambda v: 0), inside))
    d.line(body + body[:1], fill=(58, 120, 36), width=5, joint="curve")
    # Highlight: a white-ish oval, upper left.
    d.ellipse((180, 140, 214, 196), fill=(214, 240, 180))

    # Stem: a thick brown stroke curving up to the right.
    top = cy - ry * 0.84
    stem = [(cx - 2, top + 8), (cx + 2, top - 20), (cx + 10, top - 42), (cx + 18, top - 56)]
    d.line(stem, fill=(110, 72, 38), width=9, joint="curve")

    # Leaf: two arcs meeting at the tips, with a centre vein.
    base = (cx + 8, top - 30)
    tip = (cx + 84, top - 62)
    leaf = []
    for i in range(25):
        u = i / 24
        x = base[0] + (tip[0] - base[0]) * u
        y = base[1] + (tip[1] - base[1]) * u
        bulge = 22 * math.sin(math.pi * u)
        leaf.append((x - bulge * 0.38, y - bulge))
    for i in range(24, -1, -1):
        u = i / 24
        x = base[0] + (tip[0] - base[0]) * u
        y = base[1] + (tip[1] - base[1]) * u
        bulge = 14 * math.sin(math.pi * u)
        leaf.append((x + bulge * 0.38, y + bulge))
    d.polygon(leaf, fill=(70, 160, 60))
    d.line(leaf + leaf[:1], fill=(40, 104, 36), width=3)
    d.line([base, tip], fill=(40, 104, 36), width=2)
    return img


def save_sample(img: Image.Image) -> None:
    SAMPLE.parent.mkdir(parents=True, exist_ok=True)
    # Flat colours: reduced to 32 (no dithering) the PNG stays small; it is saved as plain RGB so that
    # every reader (ComfyUI's LoadImage, numpy, tests) sees three channels.
    flat = img.quantize(colors=32, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).convert("RGB")
    flat.save(SAMPLE, format="PNG", optimize=True)


# --------------------------------------------------------------------------- the thumbnail

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


def draw_thumbnail(sample: Image.Image) -> Image.Image:
    w, h = THUMB_SIZE
    img = Image.new("RGB", (w, h), BG)
    d = ImageDraw.Draw(img)

    d.text((w / 2, 24), "SDEdit  image-to-image", font=font(24), fill=TEXT, anchor="mm")
    d.text((w / 2, 50), "strength 0 = the input unchanged  \u00b7  strength 1 = text-to-image",
           font=font(12), fill=DIM, anchor="mm")

    # Row 1, left to right: the input picture, 1 · Encode, 2 · Add Noise (with the noised picture).
    pic_in = (16, 76, 160, 184)
    picture(img, d, sample, pic_in, "Load Image")
    enc = (190, 100, 310, 160)
    box(d, enc, "1 \u00b7 Encode", "pixels to latent", step=1)
    pic_noise = (352, 76, 496, 184)
    small = sample.convert("RGB").resize((144, 108), Image.Resampling.LANCZOS)
    picture(img, d, noisy(small, 0.6, seed=0), pic_noise, "2 \u00b7 Add Noise  (strength 0.6)")
    d.rounded_rectangle((pic_noise[0] - 4, pic_noise[1] - 4, pic_noise[2] + 4, pic_noise[3] + 4),
                        radius=6, outline=STEP_COLOURS[2][1], width=2)
    arrow(d, (pic_in[2] + 4, 130), (enc[0] - 4, 130))
    arrow(d, (enc[2] + 4, 130), (pic_noise[0] - 8, 130))

    # Row 2, right to left: 3 · Denoise (with the prompt), 4 · Decode, Save Image.
    den = (352, 236, 496, 300)
    box(d, den, "3 \u00b7 Denoise", "20 steps \u00b7 cfg 7", step=3)
    dec = (206, 240, 314, 296)
    box(d, dec, "4 \u00b7 Decode", "latent to pixels", step=4)
    save = (16, 240, 168, 296)
    box(d, save, "Save Image", "sdedit/img2img")
    arrow(d, ((pic_noise[0] + pic_noise[2]) / 2, pic_noise[3] + 22), ((den[0] + den[2]) / 2, den[1] - 4))
    arrow(d, (den[0] - 4, 268), (dec[2] + 4, 268))
    arrow(d, (dec[0] - 4, 268), (save[2] + 4, 268))

    # The prompt that steers the denoiser.
    d.rounded_rectangle((16, 322, 496, 370), radius=8, fill=(44, 58, 44), outline=(96, 140, 96), width=2)
    d.text((28, 334), "prompt", font=font(12), fill=(150, 200, 150), anchor="lm")
    d.text((28, 355), "\u201cphoto of perfect green apple with stem, water droplets, dramatic lighting\u201d",
           font=font(12), fill=TEXT, anchor="lm")
    arrow(d, ((den[0] + den[2]) / 2, 322), ((den[0] + den[2]) / 2, den[3] + 4), width=2, head=7)
    return img


# --------------------------------------------------------------------------- the strength-sweep example

SWEEP_UI = ROOT / "example_workflows" / "sdedit_strength_sweep.json"
SWEEP_API = ROOT / "example_workflows" / "api" / "sdedit_strength_sweep.json"
SWEEP_THUMB = ROOT / "example_workflows" / "sdedit_strength_sweep.jpg"
SWEEP_STRENGTHS = "0.2, 0.4, 0.6, 0.8"
CHECKPOINT = "v1-5-pruned-emaonly-fp16.safetensors"
POSITIVE = "photo of perfect green apple with stem, water droplets, dramatic lighting"
NEGATIVE = "blurry, low quality"


def _sockets(*names_types: tuple[str, str], links: dict[str, int] | None = None) -> list[dict]:
    """UI-format input sockets; a name in `links` is wired, any other is its node's widget."""
    links = links or {}
    out = []
    for name, kind in names_types:
        socket = {"localized_name": name, "name": name, "type": kind}
        if name not in links and kind in ("COMBO", "STRING", "INT", "FLOAT"):
            socket["widget"] = {"name": name}
        socket["link"] = links.get(name)
        out.append(socket)
    return out


def _output(name: str, kind: str, links: list[int] | None, slot: int) -> dict:
    out = {"localized_name": name, "name": name, "type": kind}
    if links:
        out["slot_index"] = slot
    out["links"] = links
    return out


def sweep_workflows() -> tuple[dict, dict]:
    """The strength-sweep example as (UI workflow, API prompt): Load Image → SDEdit · Strength Sweep →
    Save Image (the grid) and Preview Any (the table)."""
    core = {"cnr_id": "comfy-core", "ver": "0.3.64"}
    sweep_widgets = [SWEEP_STRENGTHS, 0, "fixed", 20, 7, "euler", "normal", "proportional"]
    nodes = [
        {"id": 1, "type": "CheckpointLoaderSimple", "pos": [0, 40], "size": [315, 98],
         "inputs": _sockets(("ckpt_name", "COMBO")),
         "outputs": [_output("MODEL", "MODEL", [5], 0), _output("CLIP", "CLIP", [1, 2], 1),
                     _output("VAE", "VAE", [6], 2)],
         "properties": {"Node name for S&R": "CheckpointLoaderSimple", **core, "models": [{
             "name": CHECKPOINT,
             "url": "https://huggingface.co/Comfy-Org/stable-diffusion-v1-5-archive/resolve/main/"
                    f"{CHECKPOINT}?download=true",
             "directory": "checkpoints"}]},
         "widgets_values": [CHECKPOINT]},
        {"id": 4, "type": "LoadImage", "pos": [0, 380], "size": [315, 326],
         "inputs": _sockets(("image", "COMBO"), ("upload", "IMAGEUPLOAD")),
         "outputs": [_output("IMAGE", "IMAGE", [3], 0), _output("MASK", "MASK", None, 1)],
         "properties": {"Node name for S&R": "LoadImage", **core},
         "widgets_values": ["sdedit_example.png", "image"]},
        {"id": 8, "type": "MarkdownNote", "pos": [370, 720], "size": [520, 150], "inputs": [], "outputs": [],
         "title": "Note: choosing the strength", "properties": {},
         "widgets_values": [
             "Each tile is **SDEdit 1-4** run at one strength with the **same seed**, so tiles differ only by "
             "strength. Low strengths stay faithful to the input, high strengths follow the prompt (realism).\n\n"
             "The **table** (Preview Any) gives per strength the steps that ran, **PSNR** in dB (higher = "
             "closer to the input) and the **mean absolute difference** in 0-255 pixel levels. For strokes "
             "the SDEdit paper suggests about 0.5."],
         "color": "#432", "bgcolor": "#653"},
        {"id": 2, "type": "CLIPTextEncode", "pos": [370, 0], "size": [420, 130],
         "inputs": _sockets(("clip", "CLIP"), ("text", "STRING"), links={"clip": 1}),
         "outputs": [_output("CONDITIONING", "CONDITIONING", [7], 0)],
         "title": "CLIP Text Encode (Positive Prompt)",
         "properties": {"Node name for S&R": "CLIPTextEncode", **core}, "widgets_values": [POSITIVE],
         "color": "#232", "bgcolor": "#353"},
        {"id": 3, "type": "CLIPTextEncode", "pos": [370, 180], "size": [420, 100],
         "inputs": _sockets(("clip", "CLIP"), ("text", "STRING"), links={"clip": 2}),
         "outputs": [_output("CONDITIONING", "CONDITIONING", [8], 0)],
         "title": "CLIP Text Encode (Negative Prompt)",
         "properties": {"Node name for S&R": "CLIPTextEncode", **core}, "widgets_values": [NEGATIVE],
         "color": "#322", "bgcolor": "#533"},
        {"id": 5, "type": "SDEditStrengthSweep", "pos": [370, 380], "size": [420, 300],
         "inputs": _sockets(("image", "IMAGE"), ("model", "MODEL"), ("vae", "VAE"), ("positive", "CONDITIONING"),
                            ("negative", "CONDITIONING"), ("strengths", "STRING"), ("seed", "INT"),
                            ("steps", "INT"), ("cfg", "FLOAT"), ("sampler_name", "COMBO"), ("scheduler", "COMBO"),
                            ("step_mode", "COMBO"),
                            links={"image": 3, "model": 5, "vae": 6, "positive": 7, "negative": 8}),
         "outputs": [_output("grid", "IMAGE", [9], 0), _output("table", "STRING", [10], 1)],
         "properties": {"Node name for S&R": "SDEditStrengthSweep", "cnr_id": "sdedit-img2img"},
         "widgets_values": sweep_widgets},
        {"id": 6, "type": "SaveImage", "pos": [850, 380], "size": [640, 420],
         "inputs": _sockets(("images", "IMAGE"), ("filename_prefix", "STRING"), links={"images": 9}),
         "outputs": [], "properties": {"Node name for S&R": "SaveImage", **core},
         "widgets_values": ["sdedit/strength_sweep"]},
        {"id": 7, "type": "PreviewAny", "pos": [850, 40], "size": [640, 260],
         "inputs": _sockets(("source", "*"), links={"source": 10}),
         "outputs": [], "title": "Preview Any (the strength table)",
         "properties": {"Node name for S&R": "PreviewAny", **core}, "widgets_values": []},
    ]
    for order, node in enumerate(nodes):
        node.update({"flags": {}, "order": order, "mode": 0})
    # Keys in the order the frontend writes them.
    keys = ["id", "type", "pos", "size", "flags", "order", "mode", "inputs", "outputs", "title", "properties",
            "widgets_values", "color", "bgcolor"]
    nodes = [{k: node[k] for k in keys if k in node} for node in nodes]
    links = [[1, 1, 1, 2, 0, "CLIP"], [2, 1, 1, 3, 0, "CLIP"], [3, 4, 0, 5, 0, "IMAGE"], [5, 1, 0, 5, 1, "MODEL"],
             [6, 1, 2, 5, 2, "VAE"], [7, 2, 0, 5, 3, "CONDITIONING"], [8, 3, 0, 5, 4, "CONDITIONING"],
             [9, 5, 0, 6, 0, "IMAGE"], [10, 5, 1, 7, 0, "STRING"]]
    ui = {"id": "8b1e4c52-3d7a-4f19-b6e2-5a9c0d3f7e21", "revision": 0, "last_node_id": 8, "last_link_id": 10,
          "nodes": nodes, "links": links, "groups": [], "config": {},
          "extra": {"ds": {"scale": 0.7, "offset": [60, 40]}, "frontendVersion": "1.27.10"}, "version": 0.4}
    api = {
        "1": {"inputs": {"ckpt_name": CHECKPOINT}, "class_type": "CheckpointLoaderSimple",
              "_meta": {"title": "Load Checkpoint"}},
        "2": {"inputs": {"text": POSITIVE, "clip": ["1", 1]}, "class_type": "CLIPTextEncode",
              "_meta": {"title": "CLIP Text Encode (Positive Prompt)"}},
        "3": {"inputs": {"text": NEGATIVE, "clip": ["1", 1]}, "class_type": "CLIPTextEncode",
              "_meta": {"title": "CLIP Text Encode (Negative Prompt)"}},
        "4": {"inputs": {"image": "sdedit_example.png"}, "class_type": "LoadImage", "_meta": {"title": "Load Image"}},
        "5": {"inputs": {"strengths": SWEEP_STRENGTHS, "seed": 0, "steps": 20, "cfg": 7, "sampler_name": "euler",
                         "scheduler": "normal", "step_mode": "proportional", "image": ["4", 0], "model": ["1", 0],
                         "vae": ["1", 2], "positive": ["2", 0], "negative": ["3", 0]},
              "class_type": "SDEditStrengthSweep", "_meta": {"title": "SDEdit · Strength Sweep"}},
        "6": {"inputs": {"filename_prefix": "sdedit/strength_sweep", "images": ["5", 0]}, "class_type": "SaveImage",
              "_meta": {"title": "Save Image"}},
        # The frontend sends Preview Any's display widget too (empty); the server ignores it.
        "7": {"inputs": {"preview": "", "source": ["5", 1]}, "class_type": "PreviewAny",
              "_meta": {"title": "Preview Any (the strength table)"}},
    }
    return ui, api


def draw_sweep_thumbnail(sample: Image.Image) -> Image.Image:
    """Four tiles of the sample, noisier as the strength grows, each under its label, over a table."""
    w, h = THUMB_SIZE
    img = Image.new("RGB", (w, h), BG)
    d = ImageDraw.Draw(img)
    d.text((w / 2, 24), "SDEdit  strength sweep", font=font(24), fill=TEXT, anchor="mm")
    d.text((w / 2, 50), "one picture \u00b7 one seed \u00b7 several strengths: pick from the grid and the table",
           font=font(12), fill=DIM, anchor="mm")
    tile_w, tile_h, gap = 116, 87, 8
    x0 = (w - 4 * tile_w - 3 * gap) // 2
    small = sample.convert("RGB").resize((tile_w, tile_h), Image.Resampling.LANCZOS)
    strengths = [0.2, 0.4, 0.6, 0.8]
    for i, s in enumerate(strengths):
        x = x0 + i * (tile_w + gap)
        d.rectangle((x, 74, x + tile_w - 1, 96), fill=(245, 245, 245))
        d.text((x + tile_w / 2, 85), f"strength {s:g}", font=font(13), fill=(0, 0, 0), anchor="mm")
        # Drifting from the drawing as strength grows (an illustration, not a model's output).
        drift = ImageEnhance.Contrast(small.filter(ImageFilter.GaussianBlur(4 * s))).enhance(1 + s)
        img.paste(Image.blend(small, drift, s), (x, 96))
    d.rounded_rectangle((x0, 204, w - x0, 366), radius=8, fill=BOX, outline=BOX_EDGE, width=2)
    cols = [x0 + 60, x0 + 170, x0 + 290, x0 + 410]
    for x, title in zip(cols, ["strength", "steps", "PSNR (dB)", "MAD (0-255)"]):
        d.text((x, 224), title, font=font(13), fill=TEXT, anchor="mm")
    d.line([(x0 + 12, 238), (w - x0 - 12, 238)], fill=BOX_EDGE, width=1)
    d.text((w - x0 - 10, 356), "illustrative figures", font=font(10), fill=DIM, anchor="rm")
    for row, s in enumerate(strengths):  # faithfulness falls as strength rises
        y = 256 + row * 28
        for x, value in zip(cols, [f"{s:g}", str(round(20 * s)), f"{30 - 18 * s:.1f}", f"{4 + 40 * s:.1f}"]):
            d.text((x, y), value, font=font(13), fill=DIM, anchor="mm")
    return img


def write_sweep_example(sample: Image.Image) -> list[Path]:
    ui, api = sweep_workflows()
    SWEEP_UI.write_text(json.dumps(ui, indent=2, ensure_ascii=False) + "\n")
    SWEEP_API.parent.mkdir(parents=True, exist_ok=True)
    SWEEP_API.write_text(json.dumps(api, indent=2, ensure_ascii=False) + "\n")
    draw_sweep_thumbnail(sample).save(SWEEP_THUMB, format="JPEG", quality=90, optimize=True)
    return [SWEEP_UI, SWEEP_API, SWEEP_THUMB]


def main() -> None:
    sample = draw_sample()
    save_sample(sample)
    thumb = draw_thumbnail(Image.open(SAMPLE))
    THUMB.parent.mkdir(parents=True, exist_ok=True)
    thumb.save(THUMB, format="JPEG", quality=90, optimize=True)
    for p in (SAMPLE, THUMB, *write_sweep_example(Image.open(SAMPLE))):
        print(f"wrote {p.relative_to(ROOT)} ({p.stat().st_size} bytes)")




# --------------------------------------------------------------------------- editing examples (masks, repeats)
#
#     python scripts/make_example_assets.py --edit
#
# writes the stroke painting and its mask (example_workflows/input/), and for sdedit_strokes and
# sdedit_repeats the UI workflow, its API twin and the thumbnail. The workflows are built from one
# graph description each, so the UI file and its API twin cannot drift apart.


STROKES = ROOT / "example_workflows" / "input" / "sdedit_strokes.png"
STROKES_MASK = ROOT / "example_workflows" / "input" / "sdedit_strokes_mask.png"
CKPT = "v1-5-pruned-emaonly-fp16.safetensors"
STROKE_STRENGTH = 0.5  # SDEdit paper, Sec. 3 / Fig. 3: t0 in [0.3, 0.6] balances realism and faithfulness
NEGATIVE = "blurry, low quality"


def draw_strokes() -> tuple[Image.Image, Image.Image]:
    """A stroke painting (flat colour strokes of a lake below mountains at sunset) and its edit mask:
    the landscape is edited, a painted frame and the signature corner are kept."""
    w, h = SAMPLE_SIZE
    img = Image.new("RGB", (w, h), (250, 176, 110))
    d = ImageDraw.Draw(img)
    for i, colour in enumerate([(246, 150, 96), (236, 124, 92), (214, 110, 110)]):  # sky bands
        d.rectangle((0, 60 + 40 * i, w, 100 + 40 * i), fill=colour)
    d.ellipse((330, 70, 400, 140), fill=(255, 226, 140))                       # the sun
    d.polygon([(0, 230), (110, 120), (200, 210), (300, 100), (420, 200), (w, 150), (w, 240), (0, 240)],
              fill=(92, 84, 120))                                              # mountains
    d.polygon([(250, 125), (300, 100), (340, 135), (300, 128)], fill=(240, 240, 250))  # snow
    d.rectangle((0, 240, w, h), fill=(70, 110, 170))                           # the lake
    for y in range(255, h, 22):                                                # reflections: strokes
        d.line([(300, y), (420, y + 3)], fill=(236, 170, 120), width=5)
    for x in (40, 78, 116, 440, 476):                                          # pine trees
        d.polygon([(x, 200), (x - 22, 300), (x + 22, 300)], fill=(40, 92, 56))
        d.rectangle((x - 4, 300, x + 4, 318), fill=(90, 60, 40))
    d.rectangle((0, 0, w - 1, h - 1), outline=(120, 80, 40), width=14)         # the painted frame
    d.text((w - 80, h - 30), "SDEdit", font=font(14), fill=(240, 240, 240))   # the signature
    mask = Image.new("L", (w, h), 0)
    md = ImageDraw.Draw(mask)
    md.rectangle((14, 14, w - 15, h - 15), fill=255)
    md.rectangle((w - 96, h - 42, w - 15, h - 15), fill=0)
    return img, mask


class Graph:
    """Nodes and links, written out as a UI workflow and as its API twin."""

    def __init__(self):
        self.nodes, self.links = [], []

    def node(self, kind, pos, size, sockets=(), widgets=(), outputs=(), title=None, api=None, **extra):
        node = {"id": len(self.nodes) + 1, "type": kind, "pos": list(pos), "size": list(size), "flags": {},
                "order": len(self.nodes), "mode": 0, "sockets": list(sockets), "widgets": list(widgets),
                "outputs": [[name, typ, []] for name, typ in outputs], "title": title, "api": api or {},
                "extra": extra}
        self.nodes.append(node)
        return node["id"]

    def link(self, src, slot, dst, name, typ):
        self.links.append([len(self.links) + 1, src, slot, dst, name, typ])

    def ui(self, uid: str, group: str) -> dict:
        nodes = []
        for n in self.nodes:
            incoming = {l[4]: l for l in self.links if l[3] == n["id"]}
            inputs = [{"localized_name": name, "name": name, "type": typ,
                       **({"widget": {"name": name}} if widget else {}),
                       "link": incoming[name][0] if name in incoming else None}
                      for name, typ, widget in n["sockets"]]
            outputs = [{"localized_name": name, "name": name, "type": typ, "slot_index": i,
                        "links": [l[0] for l in self.links if l[1] == n["id"] and l[2] == i] or None}
                       for i, (name, typ, _) in enumerate(n["outputs"])]
            cnr = "sdedit-img2img" if n["type"].startswith("SDEdit") else "comfy-core"
            props = {} if n["type"] == "MarkdownNote" else {"Node name for S&R": n["type"], "cnr_id": cnr}
            if cnr == "comfy-core" and props:
                props["ver"] = "0.3.64"
            ui_node = {"id": n["id"], "type": n["type"], "pos": n["pos"], "size": n["size"], "flags": {},
                       "order": n["order"], "mode": 0, "inputs": inputs, "outputs": outputs,
                       **({"title": n["title"]} if n["title"] else {}), "properties": props,
                       "widgets_values": n["widgets"], **n["extra"]}
            nodes.append(ui_node)
        links = [[l[0], l[1], l[2], l[3], self._slot(l[3], l[4]), l[5]] for l in self.links]
        xs = [n["pos"][0] for n in self.nodes]
        return {"id": uid, "revision": 0, "last_node_id": len(self.nodes), "last_link_id": len(self.links),
                "nodes": nodes, "links": links,
                "groups": [{"id": 1, "title": group, "bounding": [min(xs) - 10, -40, max(xs) + 480, 40],
                            "color": "#3f789e", "font_size": 24, "flags": {}}],
                "config": {}, "extra": {"ds": {"scale": 0.55, "offset": [60, 80]}, "frontendVersion": "1.27.10"},
                "version": 0.4}

    def _slot(self, dst, name):
        node = self.nodes[dst - 1]
        return [s[0] for s in node["sockets"]].index(name)

    def api(self) -> dict:
        out = {}
        for n in self.nodes:
            if n["type"] == "MarkdownNote":
                continue
            inputs = dict(n["api"])
            for l in self.links:
                if l[3] == n["id"]:
                    inputs[l[4]] = [str(l[1]), l[2]]
            out[str(n["id"])] = {"inputs": inputs, "class_type": n["type"],
                                 "_meta": {"title": n["title"] or TITLES[n["type"]]}}
        return out


TITLES = {"CheckpointLoaderSimple": "Load Checkpoint", "CLIPTextEncode": "CLIP Text Encode (Prompt)",
          "LoadImage": "Load Image", "LoadImageMask": "Load Image (as Mask)", "SaveImage": "Save Image",
          "SDEditEncode": "SDEdit 1 · Encode", "SDEditAddNoise": "SDEdit 2 · Add Noise",
          "SDEditSampler": "SDEdit 3 · Denoise", "SDEditDecode": "SDEdit 4 · Decode"}


def _common(g: Graph, positive: str) -> tuple[int, int, int]:
    ckpt = g.node("CheckpointLoaderSimple", (0, 40), (315, 98), [("ckpt_name", "COMBO", True)], [CKPT],
                  [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")], api={"ckpt_name": CKPT})
    pos = g.node("CLIPTextEncode", (370, 0), (420, 130), [("clip", "CLIP", False), ("text", "STRING", True)],
                 [positive], [("CONDITIONING", "CONDITIONING")], "CLIP Text Encode (Positive Prompt)",
                 api={"text": positive})
    neg = g.node("CLIPTextEncode", (370, 180), (420, 100), [("clip", "CLIP", False), ("text", "STRING", True)],
                 [NEGATIVE], [("CONDITIONING", "CONDITIONING")], "CLIP Text Encode (Negative Prompt)",
                 api={"text": NEGATIVE})
    g.link(ckpt, 1, pos, "clip", "CLIP")
    g.link(ckpt, 1, neg, "clip", "CLIP")
    return ckpt, pos, neg


ENCODE_SOCKETS = [("image", "IMAGE", False), ("vae", "VAE", False), ("mask", "MASK", False),
                  ("mask_feather", "INT", True), ("size_mode", "COMBO", True)]
NOISE_SOCKETS = [("model", "MODEL", False), ("latent", "LATENT", False), ("strength", "FLOAT", True),
                 ("seed", "INT", True)]
SAMPLER_SOCKETS = [("model", "MODEL", False), ("positive", "CONDITIONING", False),
                   ("negative", "CONDITIONING", False), ("noisy_latent", "LATENT", False), ("steps", "INT", True),
                   ("cfg", "FLOAT", True), ("sampler_name", "COMBO", True), ("scheduler", "COMBO", True),
                   ("step_mode", "COMBO", True)]
SAMPLER_API = {"steps": 20, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "step_mode": "proportional"}


def _round(g, x, ckpt, pos, neg, latent_src, strength, seed):
    noise = g.node("SDEditAddNoise", (x, 420), (290, 130), NOISE_SOCKETS, [strength, seed, "fixed"],
                   [("noisy_latent", "LATENT")], api={"strength": strength, "seed": seed})
    g.link(ckpt, 0, noise, "model", "MODEL")
    g.link(latent_src, 0, noise, "latent", "LATENT")
    den = g.node("SDEditSampler", (x, 600), (315, 214), SAMPLER_SOCKETS, list(SAMPLER_API.values()),
                 [("latent", "LATENT"), ("trajectory", "LATENT")], api=dict(SAMPLER_API))
    g.link(ckpt, 0, den, "model", "MODEL")
    g.link(pos, 0, den, "positive", "CONDITIONING")
    g.link(neg, 0, den, "negative", "CONDITIONING")
    g.link(noise, 0, den, "noisy_latent", "LATENT")
    return den


def _finish(g, x, ckpt, latent_src, prefix):
    dec = g.node("SDEditDecode", (x, 420), (230, 46), [("latent", "LATENT", False), ("vae", "VAE", False)], [],
                 [("image", "IMAGE")])
    g.link(latent_src, 0, dec, "latent", "LATENT")
    g.link(ckpt, 2, dec, "vae", "VAE")
    save = g.node("SaveImage", (x + 280, 420), (420, 460), [("images", "IMAGE", False),
                                                            ("filename_prefix", "STRING", True)],
                  [prefix], api={"filename_prefix": prefix})
    g.link(dec, 0, save, "images", "IMAGE")


def note(g, pos, size, title, text):
    g.node("MarkdownNote", pos, size, [], [text], [], title, color="#432", bgcolor="#653")


def strokes_graph() -> Graph:
    g = Graph()
    ckpt, pos, neg = _common(g, "a photo of a mountain lake at sunset, pine trees, snowy peaks, realistic")
    image = g.node("LoadImage", (0, 380), (315, 326), [("image", "COMBO", True), ("upload", "IMAGEUPLOAD", True)],
                   [STROKES.name, "image"], [("IMAGE", "IMAGE"), ("MASK", "MASK")], api={"image": STROKES.name})
    mask = g.node("LoadImageMask", (0, 760), (315, 318), [("image", "COMBO", True), ("channel", "COMBO", True),
                                                         ("upload", "IMAGEUPLOAD", True)],
                  [STROKES_MASK.name, "red", "image"], [("MASK", "MASK")],
                  api={"image": STROKES_MASK.name, "channel": "red"})
    enc = g.node("SDEditEncode", (370, 420), (260, 100), ENCODE_SOCKETS, [16, "pad"], [("latent", "LATENT")],
                 api={"mask_feather": 16, "size_mode": "pad"})
    g.link(image, 0, enc, "image", "IMAGE")
    g.link(ckpt, 2, enc, "vae", "VAE")
    g.link(mask, 0, enc, "mask", "MASK")
    den = _round(g, 680, ckpt, pos, neg, enc, STROKE_STRENGTH, 0)
    _finish(g, 1040, ckpt, den, "sdedit/strokes")
    note(g, (370, 880), (600, 170), "Note: stroke painting to image",
         "Paint flat colour strokes, mask what may change (white = edit; Load Image (as Mask), channel red), "
         "and let SDEdit turn the strokes into a picture.\n\n**strength 0.5**: the SDEdit paper finds t0 between "
         "0.3 and 0.6 balances realism and faithfulness to the strokes; lower keeps the strokes, higher "
         "invents more.\n\nOutside the mask the output is the input, pixel for pixel (mask_feather blends the "
         "edge over 16 pixels).")
    return g


def repeats_graph() -> Graph:
    g = Graph()
    ckpt, pos, neg = _common(g, "photo of perfect green apple with stem, water droplets, dramatic lighting")
    image = g.node("LoadImage", (0, 380), (315, 326), [("image", "COMBO", True), ("upload", "IMAGEUPLOAD", True)],
                   [SAMPLE.name, "image"], [("IMAGE", "IMAGE"), ("MASK", "MASK")], api={"image": SAMPLE.name})
    enc = g.node("SDEditEncode", (370, 420), (260, 100), ENCODE_SOCKETS, [0, "pad"], [("latent", "LATENT")],
                 api={"mask_feather": 0, "size_mode": "pad"})
    g.link(image, 0, enc, "image", "IMAGE")
    g.link(ckpt, 2, enc, "vae", "VAE")
    latent = enc
    for k in range(3):
        latent = _round(g, 680 + 360 * k, ckpt, pos, neg, latent, 0.5, k)
    _finish(g, 1760, ckpt, latent, "sdedit/repeats")
    note(g, (370, 880), (600, 150), "Note: repeats (the paper's K = 3)",
         "SDEdit's algorithm may repeat noise \u2192 denoise K times: each Add Noise re-noises the current result "
         "(a new seed per round) and each Denoise removes it again. With a mask on Encode the kept part is "
         "restored from the ORIGINAL image in every round.")
    return g


def edit_thumbnail(title: str, sub: str, left: Image.Image, left_caption: str, rounds: int,
                   mask: Image.Image | None = None) -> Image.Image:
    w, h = THUMB_SIZE
    img = Image.new("RGB", (w, h), BG)
    d = ImageDraw.Draw(img)
    d.text((w / 2, 24), title, font=font(24), fill=TEXT, anchor="mm")
    d.text((w / 2, 50), sub, font=font(12), fill=DIM, anchor="mm")
    picture(img, d, left, (16, 76, 240, 244), left_caption)
    if mask is not None:
        picture(img, d, mask, (272, 76, 496, 244), "Load Image (as Mask): white = edit")
    else:
        picture(img, d, noisy(left.convert("RGB").resize((112, 84)), 0.5, seed=1), (272, 76, 496, 244),
                "Add Noise, strength 0.5")
    y = 290
    boxes = ["1 \u00b7 Encode"] + ["2 \u00b7 Add Noise", "3 \u00b7 Denoise"] * rounds + ["4 \u00b7 Decode"]
    bw = (w - 32 - 8 * (len(boxes) - 1)) / len(boxes)
    for i, label in enumerate(boxes):
        x0 = 16 + i * (bw + 8)
        box(d, (int(x0), y, int(x0 + bw), y + 50), label.split(" \u00b7 ")[0], label.split(" \u00b7 ")[1],
            step=int(label[0]))
        if i:
            arrow(d, (x0 - 8, y + 25), (x0 - 1, y + 25), width=2, head=4)
    return img


def edit_examples() -> list[Path]:
    strokes, mask = draw_strokes()
    strokes.quantize(colors=32, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).convert("RGB").save(
        STROKES, format="PNG", optimize=True)
    mask.save(STROKES_MASK, format="PNG", optimize=True)
    written = [STROKES, STROKES_MASK]
    for name, graph, title, thumb in [
        ("sdedit_strokes", strokes_graph(), "SDEdit strokes \u2192 picture",
         edit_thumbnail("SDEdit  strokes to picture", "flat colour strokes, a mask, strength 0.5",
                        strokes, "Load Image: stroke painting", 1, mask)),
        ("sdedit_repeats", repeats_graph(), "SDEdit repeats (K = 3)",
         edit_thumbnail("SDEdit  repeats  K = 3", "Add Noise, then Denoise, three times: a new seed each round",
                        Image.open(SAMPLE), "Load Image", 3)),
    ]:
        ui = ROOT / "example_workflows" / f"{name}.json"
        api = ROOT / "example_workflows" / "api" / f"{name}.json"
        jpg = ROOT / "example_workflows" / f"{name}.jpg"
        uid = {"sdedit_strokes": "6b1f4c2e-3a5d-4e7f-8a9b-0c1d2e3f4a51",
               "sdedit_repeats": "7c2a5d3f-4b6e-4f80-9bac-1d2e3f4a5b62"}[name]
        ui.write_text(json.dumps(graph.ui(uid, title), indent=2, ensure_ascii=False) + "\n")
        api.write_text(json.dumps(graph.api(), indent=2, ensure_ascii=False) + "\n")
        thumb.save(jpg, format="JPEG", quality=90, optimize=True)
        written += [ui, api, jpg]
    return written


if __name__ == "__main__":
    import sys
    if "--edit" in sys.argv:
        for p in edit_examples():
            print(f"wrote {p.relative_to(ROOT)} ({p.stat().st_size} bytes)")
    else:
        main()
