"""The sample input, the img2img template's thumbnail and the strength-sweep example.

    example_workflows/input/sdedit_example.png   the sample input: an "amateur drawing" of a green
                                                 apple (512x384), the picture SDEdit turns into a photo
    example_workflows/sdedit_img2img.jpg         the template browser's thumbnail for
                                                 example_workflows/sdedit_img2img.json: the graph as a
                                                 diagram, with the sample image as its input
    example_workflows/sdedit_strength_sweep.json     the strength-sweep example (UI format), its API
    example_workflows/api/sdedit_strength_sweep.json twin and .jpg thumbnail (write_sweep_example)
"""
from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from .common import (API, BOX, BOX_EDGE, CHECKPOINT, CORE, DIM, EXAMPLES, FRONTEND_VERSION, NEGATIVE, PACK_ID,
                     POSITIVE, SAMPLE, SAMPLE_SIZE, SAMPLING, STEP_COLOURS, TEXT, TITLES, THUMB_SIZE, arrow,
                     blank_thumbnail, box, font, noisy, picture, save_flat_png, save_thumbnail, write_json)

THUMB = EXAMPLES / "sdedit_img2img.jpg"
SWEEP_UI = EXAMPLES / "sdedit_strength_sweep.json"
SWEEP_API = API / "sdedit_strength_sweep.json"
SWEEP_THUMB = EXAMPLES / "sdedit_strength_sweep.jpg"
SWEEP_STRENGTHS = "0.2, 0.4, 0.6, 0.8"


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


# --------------------------------------------------------------------------- the img2img thumbnail

def draw_thumbnail(sample: Image.Image) -> Image.Image:
    img, d = blank_thumbnail("SDEdit  image-to-image",
                             "strength 0 = the input unchanged  \u00b7  strength 1 = text-to-image")

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
    box(d, den, "3 \u00b7 Denoise", f"{SAMPLING['steps']} steps \u00b7 cfg {SAMPLING['cfg']}", step=3)
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
    d.text((28, 355), f"\u201c{POSITIVE}\u201d", font=font(12), fill=TEXT, anchor="lm")
    arrow(d, ((den[0] + den[2]) / 2, 322), ((den[0] + den[2]) / 2, den[3] + 4), width=2, head=7)
    return img


# --------------------------------------------------------------------------- the strength-sweep example

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
    sweep_widgets = [SWEEP_STRENGTHS, 0, "fixed", *SAMPLING.values()]
    nodes = [
        {"id": 1, "type": "CheckpointLoaderSimple", "pos": [0, 40], "size": [315, 98],
         "inputs": _sockets(("ckpt_name", "COMBO")),
         "outputs": [_output("MODEL", "MODEL", [5], 0), _output("CLIP", "CLIP", [1, 2], 1),
                     _output("VAE", "VAE", [6], 2)],
         "properties": {"Node name for S&R": "CheckpointLoaderSimple", **CORE, "models": [{
             "name": CHECKPOINT,
             "url": "https://huggingface.co/Comfy-Org/stable-diffusion-v1-5-archive/resolve/main/"
                    f"{CHECKPOINT}?download=true",
             "directory": "checkpoints"}]},
         "widgets_values": [CHECKPOINT]},
        {"id": 4, "type": "LoadImage", "pos": [0, 380], "size": [315, 326],
         "inputs": _sockets(("image", "COMBO"), ("upload", "IMAGEUPLOAD")),
         "outputs": [_output("IMAGE", "IMAGE", [3], 0), _output("MASK", "MASK", None, 1)],
         "properties": {"Node name for S&R": "LoadImage", **CORE},
         "widgets_values": [SAMPLE.name, "image"]},
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
         "properties": {"Node name for S&R": "CLIPTextEncode", **CORE}, "widgets_values": [POSITIVE],
         "color": "#232", "bgcolor": "#353"},
        {"id": 3, "type": "CLIPTextEncode", "pos": [370, 180], "size": [420, 100],
         "inputs": _sockets(("clip", "CLIP"), ("text", "STRING"), links={"clip": 2}),
         "outputs": [_output("CONDITIONING", "CONDITIONING", [8], 0)],
         "title": "CLIP Text Encode (Negative Prompt)",
         "properties": {"Node name for S&R": "CLIPTextEncode", **CORE}, "widgets_values": [NEGATIVE],
         "color": "#322", "bgcolor": "#533"},
        {"id": 5, "type": "SDEditStrengthSweep", "pos": [370, 380], "size": [420, 300],
         "inputs": _sockets(("image", "IMAGE"), ("model", "MODEL"), ("vae", "VAE"), ("positive", "CONDITIONING"),
                            ("negative", "CONDITIONING"), ("strengths", "STRING"), ("seed", "INT"),
                            ("steps", "INT"), ("cfg", "FLOAT"), ("sampler_name", "COMBO"), ("scheduler", "COMBO"),
                            ("step_mode", "COMBO"),
                            links={"image": 3, "model": 5, "vae": 6, "positive": 7, "negative": 8}),
         "outputs": [_output("grid", "IMAGE", [9], 0), _output("table", "STRING", [10], 1)],
         "properties": {"Node name for S&R": "SDEditStrengthSweep", "cnr_id": PACK_ID},
         "widgets_values": sweep_widgets},
        {"id": 6, "type": "SaveImage", "pos": [850, 380], "size": [640, 420],
         "inputs": _sockets(("images", "IMAGE"), ("filename_prefix", "STRING"), links={"images": 9}),
         "outputs": [], "properties": {"Node name for S&R": "SaveImage", **CORE},
         "widgets_values": ["sdedit/strength_sweep"]},
        {"id": 7, "type": "PreviewAny", "pos": [850, 40], "size": [640, 260],
         "inputs": _sockets(("source", "*"), links={"source": 10}),
         "outputs": [], "title": "Preview Any (the strength table)",
         "properties": {"Node name for S&R": "PreviewAny", **CORE}, "widgets_values": []},
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
          "extra": {"ds": {"scale": 0.7, "offset": [60, 40]}, "frontendVersion": FRONTEND_VERSION}, "version": 0.4}
    api = {
        "1": {"inputs": {"ckpt_name": CHECKPOINT}, "class_type": "CheckpointLoaderSimple",
              "_meta": {"title": TITLES["CheckpointLoaderSimple"]}},
        "2": {"inputs": {"text": POSITIVE, "clip": ["1", 1]}, "class_type": "CLIPTextEncode",
              "_meta": {"title": "CLIP Text Encode (Positive Prompt)"}},
        "3": {"inputs": {"text": NEGATIVE, "clip": ["1", 1]}, "class_type": "CLIPTextEncode",
              "_meta": {"title": "CLIP Text Encode (Negative Prompt)"}},
        "4": {"inputs": {"image": SAMPLE.name}, "class_type": "LoadImage", "_meta": {"title": TITLES["LoadImage"]}},
        "5": {"inputs": {"strengths": SWEEP_STRENGTHS, "seed": 0, **SAMPLING, "image": ["4", 0], "model": ["1", 0],
                         "vae": ["1", 2], "positive": ["2", 0], "negative": ["3", 0]},
              "class_type": "SDEditStrengthSweep", "_meta": {"title": "SDEdit · Strength Sweep"}},
        "6": {"inputs": {"filename_prefix": "sdedit/strength_sweep", "images": ["5", 0]}, "class_type": "SaveImage",
              "_meta": {"title": TITLES["SaveImage"]}},
        # The frontend sends Preview Any's display widget too (empty); the server ignores it.
        "7": {"inputs": {"preview": "", "source": ["5", 1]}, "class_type": "PreviewAny",
              "_meta": {"title": "Preview Any (the strength table)"}},
    }
    return ui, api


def draw_sweep_thumbnail(sample: Image.Image) -> Image.Image:
    """Four tiles of the sample, noisier as the strength grows, each under its label, over a table."""
    img, d = blank_thumbnail("SDEdit  strength sweep",
                             "one picture \u00b7 one seed \u00b7 several strengths: pick from the grid and the table")
    w = THUMB_SIZE[0]
    tile_w, tile_h, gap = 116, 87, 8
    x0 = (w - 4 * tile_w - 3 * gap) // 2
    small = sample.convert("RGB").resize((tile_w, tile_h), Image.Resampling.LANCZOS)
    strengths = [float(s) for s in SWEEP_STRENGTHS.split(",")]
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
    write_json(SWEEP_UI, ui)
    write_json(SWEEP_API, api)
    save_thumbnail(draw_sweep_thumbnail(sample), SWEEP_THUMB)
    return [SWEEP_UI, SWEEP_API, SWEEP_THUMB]


def basic_examples() -> list[Path]:
    """Writes the sample, the img2img thumbnail and the strength-sweep example; returns the paths written."""
    save_flat_png(draw_sample(), SAMPLE)
    save_thumbnail(draw_thumbnail(Image.open(SAMPLE)), THUMB)
    return [SAMPLE, THUMB, *write_sweep_example(Image.open(SAMPLE))]


def basic_thumbnails() -> dict:
    """The img2img and strength-sweep thumbnails, drawn when called: {name: () -> Image}."""
    return {"sdedit_img2img": lambda: draw_thumbnail(Image.open(SAMPLE)),
            "sdedit_strength_sweep": lambda: draw_sweep_thumbnail(Image.open(SAMPLE))}
