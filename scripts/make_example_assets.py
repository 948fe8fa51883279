"""Draws the example workflow's picture assets with Pillow, deterministically.

    python scripts/make_example_assets.py

writes
    example_workflows/input/sdedit_example.png   the sample input: an "amateur drawing" of a green
                                                 apple (512x384), the picture SDEdit turns into a photo
    example_workflows/sdedit_img2img.jpg         the template browser's thumbnail for
                                                 example_workflows/sdedit_img2img.json: the graph as a
                                                 diagram, with the sample image as its input

Nothing random is drawn except the "noise" speckles, which come from a fixed-seed random.Random, and
text uses Pillow's built-in font, so the same Pillow version gives the same bytes on any machine.
"""
from __future__ import annotations

import math
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

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
SDEDIT = (58, 92, 140)        # the pack's four nodes stand out in blue
SDEDIT_EDGE = (120, 170, 230)
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
        sdedit: bool = False) -> None:
    d.rounded_rectangle(xy, radius=9, fill=SDEDIT if sdedit else BOX,
                        outline=SDEDIT_EDGE if sdedit else BOX_EDGE, width=2)
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
    box(d, enc, "1 \u00b7 Encode", "pixels to latent", sdedit=True)
    pic_noise = (352, 76, 496, 184)
    small = sample.convert("RGB").resize((144, 108), Image.Resampling.LANCZOS)
    picture(img, d, noisy(small, 0.6, seed=0), pic_noise, "2 \u00b7 Add Noise  (strength 0.6)")
    d.rounded_rectangle((pic_noise[0] - 4, pic_noise[1] - 4, pic_noise[2] + 4, pic_noise[3] + 4),
                        radius=6, outline=SDEDIT_EDGE, width=2)
    arrow(d, (pic_in[2] + 4, 130), (enc[0] - 4, 130))
    arrow(d, (enc[2] + 4, 130), (pic_noise[0] - 8, 130))

    # Row 2, right to left: 3 · Denoise (with the prompt), 4 · Decode, Save Image.
    den = (352, 236, 496, 300)
    box(d, den, "3 \u00b7 Denoise", "20 steps \u00b7 cfg 7", sdedit=True)
    dec = (206, 240, 314, 296)
    box(d, dec, "4 \u00b7 Decode", "latent to pixels", sdedit=True)
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


def main() -> None:
    sample = draw_sample()
    save_sample(sample)
    thumb = draw_thumbnail(Image.open(SAMPLE))
    THUMB.parent.mkdir(parents=True, exist_ok=True)
    thumb.save(THUMB, format="JPEG", quality=90, optimize=True)
    for p in (SAMPLE, THUMB):
        print(f"wrote {p.relative_to(ROOT)} ({p.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
