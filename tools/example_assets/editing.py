"""The editing examples (masks, repeats, tiled upscale): the stroke painting and its mask
(example_workflows/input/), and for sdedit_strokes, sdedit_repeats, sdedit_region, sdedit_strength_map, sdedit_remove and
sdedit_upscale the UI workflow, its API twin and the thumbnail. The workflows are built from
one graph description each, so the UI file and its API twin cannot drift apart.

The repeats example and its thumbnail use the sample picture, so the basic assets are written first.
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from .common import (API, CHECKPOINT, CORE, EXAMPLES, FRONTEND_VERSION, INPUT, NEGATIVE, PACK_ID, POSITIVE,
                     SAMPLE, SAMPLE_SIZE, SAMPLING, THUMB_SIZE, TITLES, arrow, blank_thumbnail, box, font, noisy,
                     picture, save_flat_png, save_thumbnail, write_json)

STROKES = INPUT / "sdedit_strokes.png"
STROKES_MASK = INPUT / "sdedit_strokes_mask.png"
STROKES_PROMPT = "a photo of a mountain lake at sunset, pine trees, snowy peaks, realistic"
STROKE_STRENGTH = 0.5  # SDEdit paper, Sec. 3 / Fig. 3: t0 in [0.3, 0.6] balances realism and faithfulness
REPEATS = 3  # the paper's K
REPEAT_STRENGTH = 0.5
REGION = INPUT / "sdedit_region.png"
REGION_MASK = INPUT / "sdedit_region_mask.png"
REGION_SIZE = (2048, 1536)  # a big picture ...
REGION_BOX = (1180, 880, 1308, 1008)  # ... and a 128 x 128 part of it to edit
REGION_PROMPT = "a shiny red apple on a wooden table, photo, detailed"
REGION_STRENGTH = 0.6
REGION_CROP = {"crop_to_mask": True, "crop_size": 512, "crop_padding": 32, "crop_factor": 1.5,
               "masked_content": "original"}
# The UI workflows' ids, one per example.
WORKFLOW_IDS = {"sdedit_strokes": "6b1f4c2e-3a5d-4e7f-8a9b-0c1d2e3f4a51",
                "sdedit_repeats": "7c2a5d3f-4b6e-4f80-9bac-1d2e3f4a5b62",
                "sdedit_region": "9e4c7f51-6d80-41a2-8dce-3f4a5b6c7d84",
                "sdedit_upscale": "8d3b6e4a-5c7f-4091-a1bd-2e3f4a5b6c73",
                "sdedit_strength_map": "a4c8e2f6-1b3d-4e5f-9a7c-6d8e0f1a2b3c",
                "sdedit_remove": "b5d9f3a7-2c4e-4f60-8b8d-7e9f1a2b3c4d"}
MAP_MASK = INPUT / "sdedit_strength_map_mask.png"
MAP_STRENGTH = 0.8
MAP_LEVELS = {"background": 255, "apple": 128, "table": 0}  # edit at 0.8, 0.4 (128/255 x 0.8) and keep
REMOVE = INPUT / "sdedit_remove.png"
REMOVE_MASK = INPUT / "sdedit_remove_mask.png"
REMOVE_BOX = (236, 196, 340, 310)  # the mug on the table, with a margin: the mask
REMOVE_PROMPT = "photo of an empty wooden table against a plain wall, nothing on the table"
REMOVE_STRENGTH = 0.75  # with masked_content fill: the object is gone, the light and colours around it stay
UPSCALE_BY = 2.0
UPSCALE_STRENGTH = 0.35  # the Ultimate SD Upscale range (0.2-0.4): detail added, composition kept


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


def draw_strength_map() -> Image.Image:
    """A grey map of three levels over the sample picture: the background at 1 (white), the apple at 0.5
    (grey) and the table's edge at 0 (black: kept)."""
    w, h = SAMPLE_SIZE
    mask = Image.new("L", (w, h), MAP_LEVELS["background"])
    d = ImageDraw.Draw(mask)
    d.ellipse((134, 96, 380, 306), fill=MAP_LEVELS["apple"])
    d.polygon([(248, 120), (262, 52), (290, 40), (346, 50), (300, 88), (268, 122)], fill=MAP_LEVELS["apple"])
    d.rectangle((0, 312, w, h), fill=MAP_LEVELS["table"])
    return mask


def draw_region() -> tuple[Image.Image, Image.Image]:
    """A big flat picture (a table top by a window) with a small apple on it, and a mask of just the apple."""
    w, h = REGION_SIZE
    img = Image.new("RGB", (w, h), (196, 206, 214))
    d = ImageDraw.Draw(img)
    d.rectangle((0, 0, w, 700), fill=(222, 228, 232))                         # the wall
    d.rectangle((200, 90, 900, 620), fill=(150, 190, 230))                    # the window
    d.line([(550, 90), (550, 620)], fill=(240, 240, 240), width=16)
    d.line([(200, 355), (900, 355)], fill=(240, 240, 240), width=16)
    d.rectangle((0, 700, w, h), fill=(150, 104, 64))                          # the table
    for y in range(760, h, 90):                                               # its boards
        d.line([(0, y), (w, y + 6)], fill=(128, 86, 52), width=6)
    d.rectangle((1500, 420, 1700, 900), fill=(90, 120, 150))                  # a vase
    x0, y0, x1, y1 = REGION_BOX
    d.ellipse((x0 + 10, y0 + 14, x1 - 10, y1 - 6), fill=(200, 40, 36))       # the apple
    d.line([(x0 + 64, y0 + 18), (x0 + 70, y0 + 2)], fill=(80, 50, 20), width=6)
    mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask).ellipse(REGION_BOX, fill=255)
    return img, mask


def draw_remove() -> tuple[Image.Image, Image.Image]:
    """A table against a wall with a blue mug on it, and a mask over the mug (with a margin)."""
    w, h = SAMPLE_SIZE
    img = Image.new("RGB", (w, h), (214, 206, 190))
    d = ImageDraw.Draw(img)
    d.rectangle((40, 30, 200, 150), fill=(170, 200, 226))                     # a window
    d.line([(120, 30), (120, 150)], fill=(236, 236, 232), width=6)
    d.rectangle((0, 250, w, h), fill=(150, 102, 62))                          # the table
    for y in range(280, h, 36):                                               # its boards
        d.line([(0, y), (w, y + 3)], fill=(126, 84, 50), width=4)
    d.ellipse((256, 282, 322, 300), fill=(112, 76, 46))                       # the mug's shadow
    d.rectangle((258, 220, 318, 292), fill=(40, 84, 170))                     # the mug
    d.ellipse((258, 212, 318, 228), fill=(70, 120, 200))
    d.ellipse((304, 234, 334, 272), outline=(40, 84, 170), width=7)           # its handle
    d.line([(266, 236), (266, 284)], fill=(90, 140, 220), width=4)            # a highlight
    mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask).rounded_rectangle(REMOVE_BOX, radius=18, fill=255)
    return img, mask


class Graph:
    """Nodes and links, written out as a UI workflow and as its API twin."""

    def __init__(self):
        self.nodes, self.links = [], []

    def node(self, kind, pos, size, sockets=(), widgets=(), outputs=(), title=None, api=None, models=(), **extra):
        """`models`: the files a loader names, as the frontend's missing-model dialog reads them
        (properties.models: name, url, directory)."""
        node = {"id": len(self.nodes) + 1, "type": kind, "pos": list(pos), "size": list(size), "flags": {},
                "order": len(self.nodes), "mode": 0, "sockets": list(sockets), "widgets": list(widgets),
                "outputs": [[name, typ, []] for name, typ in outputs], "title": title, "api": api or {},
                "models": list(models), "extra": extra}
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
            cnr = PACK_ID if n["type"].startswith("SDEdit") else CORE["cnr_id"]
            props = {} if n["type"] == "MarkdownNote" else {"Node name for S&R": n["type"], "cnr_id": cnr}
            if cnr == CORE["cnr_id"] and props:
                props["ver"] = CORE["ver"]
            if n["models"]:
                props["models"] = n["models"]
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
                "config": {}, "extra": {"ds": {"scale": 0.55, "offset": [60, 80]},
                                        "frontendVersion": FRONTEND_VERSION},
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


def _common(g: Graph, positive: str) -> tuple[int, int, int]:
    ckpt = g.node("CheckpointLoaderSimple", (0, 40), (315, 98), [("ckpt_name", "COMBO", True)], [CHECKPOINT],
                  [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")], api={"ckpt_name": CHECKPOINT})
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
                  ("mask_feather", "INT", True), ("size_mode", "COMBO", True), ("crop_to_mask", "BOOLEAN", True),
                  ("crop_size", "INT", True), ("crop_padding", "INT", True), ("crop_factor", "FLOAT", True),
                  ("masked_content", "COMBO", True)]
# Encode's optional crop widgets at their defaults (off) and masked_content at its own, as the frontend sends them
CROP_OFF = {"crop_to_mask": False, "crop_size": 512, "crop_padding": 32, "crop_factor": 1.5, "masked_content": "original"}
NOISE_SOCKETS = [("model", "MODEL", False), ("latent", "LATENT", False), ("strength", "FLOAT", True),
                 ("seed", "INT", True)]
SAMPLER_SOCKETS = [("model", "MODEL", False), ("positive", "CONDITIONING", False),
                   ("negative", "CONDITIONING", False), ("noisy_latent", "LATENT", False), ("steps", "INT", True),
                   ("cfg", "FLOAT", True), ("sampler_name", "COMBO", True), ("scheduler", "COMBO", True),
                   ("step_mode", "COMBO", True), ("tiling", "COMBO", True), ("tile_size", "INT", True),
                   ("tile_overlap", "INT", True), ("tile_batch", "INT", True)]
# Denoise's cfg widget is a FLOAT: 7.0; its optional tiling widgets at their defaults (off), as the frontend sends them
SAMPLER_API = {**SAMPLING, "cfg": float(SAMPLING["cfg"]), "tiling": "off", "tile_size": 0, "tile_overlap": 128,
               "tile_batch": 0}


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
    dec = g.node("SDEditDecode", (x, 420), (230, 70), [("latent", "LATENT", False), ("vae", "VAE", False),
                                                       ("color_anchor", "FLOAT", True)], [0.0],
                 [("image", "IMAGE")], api={"color_anchor": 0.0})  # its optional widget at its default (off)
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
    ckpt, pos, neg = _common(g, STROKES_PROMPT)
    image = g.node("LoadImage", (0, 380), (315, 326), [("image", "COMBO", True), ("upload", "IMAGEUPLOAD", True)],
                   [STROKES.name, "image"], [("IMAGE", "IMAGE"), ("MASK", "MASK")], api={"image": STROKES.name})
    mask = g.node("LoadImageMask", (0, 760), (315, 318), [("image", "COMBO", True), ("channel", "COMBO", True),
                                                         ("upload", "IMAGEUPLOAD", True)],
                  [STROKES_MASK.name, "red", "image"], [("MASK", "MASK")],
                  api={"image": STROKES_MASK.name, "channel": "red"})
    enc = g.node("SDEditEncode", (370, 420), (260, 100), ENCODE_SOCKETS, [16, "pad", *CROP_OFF.values()], [("latent", "LATENT")],
                 api={"mask_feather": 16, "size_mode": "pad", **CROP_OFF})
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


def region_graph() -> Graph:
    g = Graph()
    ckpt, pos, neg = _common(g, REGION_PROMPT)
    image = g.node("LoadImage", (0, 380), (315, 326), [("image", "COMBO", True), ("upload", "IMAGEUPLOAD", True)],
                   [REGION.name, "image"], [("IMAGE", "IMAGE"), ("MASK", "MASK")], api={"image": REGION.name})
    mask = g.node("LoadImageMask", (0, 760), (315, 318), [("image", "COMBO", True), ("channel", "COMBO", True),
                                                         ("upload", "IMAGEUPLOAD", True)],
                  [REGION_MASK.name, "red", "image"], [("MASK", "MASK")],
                  api={"image": REGION_MASK.name, "channel": "red"})
    enc = g.node("SDEditEncode", (370, 420), (260, 200), ENCODE_SOCKETS,
                 [8, "pad", *REGION_CROP.values()], [("latent", "LATENT")],
                 api={"mask_feather": 8, "size_mode": "pad", **REGION_CROP})
    g.link(image, 0, enc, "image", "IMAGE")
    g.link(ckpt, 2, enc, "vae", "VAE")
    g.link(mask, 0, enc, "mask", "MASK")
    den = _round(g, 680, ckpt, pos, neg, enc, REGION_STRENGTH, 0)
    _finish(g, 1040, ckpt, den, "sdedit/region")
    note(g, (370, 880), (600, 190), "Note: edit a small part of a big picture",
         "A 2048 x 1536 picture and a mask of one 128 x 128 apple. **crop_to_mask** on Encode cuts the apple out "
         "with context around it (crop_factor 1.5, then crop_padding 32 px), scales that crop to **crop_size** "
         "512 (the size SD1.5 draws best at) and edits only it; Decode scales it back and stitches it in.\n\n"
         "The model sees a 64 x 64 latent instead of 256 x 192, and the rest of the picture never goes through "
         "the VAE: outside the mask the output is the input, pixel for pixel. Use 1024 for SDXL, SD3 or Flux.")
    return g


def strength_map_graph() -> Graph:
    g = Graph()
    ckpt, pos, neg = _common(g, POSITIVE)
    image = g.node("LoadImage", (0, 380), (315, 326), [("image", "COMBO", True), ("upload", "IMAGEUPLOAD", True)],
                   [SAMPLE.name, "image"], [("IMAGE", "IMAGE"), ("MASK", "MASK")], api={"image": SAMPLE.name})
    mask = g.node("LoadImageMask", (0, 760), (315, 318), [("image", "COMBO", True), ("channel", "COMBO", True),
                                                         ("upload", "IMAGEUPLOAD", True)],
                  [MAP_MASK.name, "red", "image"], [("MASK", "MASK")], api={"image": MAP_MASK.name, "channel": "red"})
    enc = g.node("SDEditEncode", (370, 420), (260, 200), ENCODE_SOCKETS, [0, "pad", *CROP_OFF.values()],
                 [("latent", "LATENT")], api={"mask_feather": 0, "size_mode": "pad", **CROP_OFF})
    g.link(image, 0, enc, "image", "IMAGE")
    g.link(ckpt, 2, enc, "vae", "VAE")
    g.link(mask, 0, enc, "mask", "MASK")
    den = _round(g, 680, ckpt, pos, neg, enc, MAP_STRENGTH, 0)
    _finish(g, 1040, ckpt, den, "sdedit/strength_map")
    note(g, (370, 880), (600, 190), "Note: a strength per pixel",
         "The mask is a map of strengths: a grey value m edits that part at **m x strength**. Here strength "
         "0.8: the background (white) changes at 0.8, the apple (grey, 0.5) at 0.4, so it keeps its shape, and "
         "the table's edge (black) is kept, pixel for pixel.\n\nEach part joins the denoising at exactly the "
         "noise level a whole picture at its strength would start from, so 0.5 means the same whatever the "
         "steps or scheduler. A feather (mask_feather) is a ramp of this map.")
    return g


def remove_graph() -> Graph:
    g = Graph()
    ckpt, pos, neg = _common(g, REMOVE_PROMPT)
    image = g.node("LoadImage", (0, 380), (315, 326), [("image", "COMBO", True), ("upload", "IMAGEUPLOAD", True)],
                   [REMOVE.name, "image"], [("IMAGE", "IMAGE"), ("MASK", "MASK")], api={"image": REMOVE.name})
    mask = g.node("LoadImageMask", (0, 760), (315, 318), [("image", "COMBO", True), ("channel", "COMBO", True),
                                                         ("upload", "IMAGEUPLOAD", True)],
                  [REMOVE_MASK.name, "red", "image"], [("MASK", "MASK")],
                  api={"image": REMOVE_MASK.name, "channel": "red"})
    widgets = {**CROP_OFF, "masked_content": "fill"}
    enc = g.node("SDEditEncode", (370, 420), (260, 220), ENCODE_SOCKETS, [8, "pad", *widgets.values()],
                 [("latent", "LATENT")], api={"mask_feather": 8, "size_mode": "pad", **widgets})
    g.link(image, 0, enc, "image", "IMAGE")
    g.link(ckpt, 2, enc, "vae", "VAE")
    g.link(mask, 0, enc, "mask", "MASK")
    den = _round(g, 680, ckpt, pos, neg, enc, REMOVE_STRENGTH, 0)
    _finish(g, 1040, ckpt, den, "sdedit/remove")
    note(g, (370, 880), (600, 190), "Note: remove an object",
         "The mask covers the mug (with a margin). **masked_content fill** on Encode starts the masked part from "
         "the picture with the mug filled in from the wall and table around it, so at **strength 0.75** the "
         "mug is gone while the light and colours around it stay; the prompt describes the empty table.\n\n"
         "With masked_content original the mug would show through at this strength. Outside the mask the "
         "output is the input, pixel for pixel.")
    return g


def repeats_graph() -> Graph:
    g = Graph()
    ckpt, pos, neg = _common(g, POSITIVE)
    image = g.node("LoadImage", (0, 380), (315, 326), [("image", "COMBO", True), ("upload", "IMAGEUPLOAD", True)],
                   [SAMPLE.name, "image"], [("IMAGE", "IMAGE"), ("MASK", "MASK")], api={"image": SAMPLE.name})
    enc = g.node("SDEditEncode", (370, 420), (260, 100), ENCODE_SOCKETS, [0, "pad", *CROP_OFF.values()], [("latent", "LATENT")],
                 api={"mask_feather": 0, "size_mode": "pad", **CROP_OFF})
    g.link(image, 0, enc, "image", "IMAGE")
    g.link(ckpt, 2, enc, "vae", "VAE")
    latent = enc
    for k in range(REPEATS):
        latent = _round(g, 680 + 360 * k, ckpt, pos, neg, latent, REPEAT_STRENGTH, k)
    _finish(g, 680 + 360 * REPEATS, ckpt, latent, "sdedit/repeats")
    note(g, (370, 880), (600, 150), "Note: repeats (the paper's K = 3)",
         "SDEdit's algorithm may repeat noise \u2192 denoise K times: each Add Noise re-noises the current result "
         "(a new seed per round) and each Denoise removes it again. With a mask on Encode the kept part is "
         "restored from the ORIGINAL image in every round.")
    return g


def upscale_graph() -> Graph:
    """Load Image -> Upscale Image By 2x -> Encode -> Add Noise 0.35 -> Denoise on blended tiles -> Decode."""
    g = Graph()
    ckpt, pos, neg = _common(g, POSITIVE)
    image = g.node("LoadImage", (0, 380), (315, 326), [("image", "COMBO", True), ("upload", "IMAGEUPLOAD", True)],
                   [SAMPLE.name, "image"], [("IMAGE", "IMAGE"), ("MASK", "MASK")], api={"image": SAMPLE.name})
    scale = g.node("ImageScaleBy", (370, 300), (260, 82), [("image", "IMAGE", False),
                                                           ("upscale_method", "COMBO", True),
                                                           ("scale_by", "FLOAT", True)],
                   ["lanczos", UPSCALE_BY], [("IMAGE", "IMAGE")],
                   api={"upscale_method": "lanczos", "scale_by": UPSCALE_BY})
    g.link(image, 0, scale, "image", "IMAGE")
    enc = g.node("SDEditEncode", (370, 420), (260, 100), ENCODE_SOCKETS, [0, "pad", *CROP_OFF.values()], [("latent", "LATENT")],
                 api={"mask_feather": 0, "size_mode": "pad", **CROP_OFF})
    g.link(scale, 0, enc, "image", "IMAGE")
    g.link(ckpt, 2, enc, "vae", "VAE")
    noise = g.node("SDEditAddNoise", (680, 420), (290, 130), NOISE_SOCKETS, [UPSCALE_STRENGTH, 0, "fixed"],
                   [("noisy_latent", "LATENT")], api={"strength": UPSCALE_STRENGTH, "seed": 0})
    g.link(ckpt, 0, noise, "model", "MODEL")
    g.link(enc, 0, noise, "latent", "LATENT")
    tiled = {**SAMPLER_API, "tiling": "on"}
    den = g.node("SDEditSampler", (680, 600), (315, 310), SAMPLER_SOCKETS, list(tiled.values()),
                 [("latent", "LATENT"), ("trajectory", "LATENT")], api=tiled)
    g.link(ckpt, 0, den, "model", "MODEL")
    g.link(pos, 0, den, "positive", "CONDITIONING")
    g.link(neg, 0, den, "negative", "CONDITIONING")
    g.link(noise, 0, den, "noisy_latent", "LATENT")
    _finish(g, 1040, ckpt, den, "sdedit/upscale")
    note(g, (0, 760), (600, 170), "Note: upscale, then refine on tiles",
         "Upscale Image By (or an upscale model) makes the picture larger; SDEdit at **strength 0.35** lets the "
         "model add detail at its own resolution. **tiling on** runs the model on overlapping 512-px tiles "
         "(tile_size 0: the model's native size) at every step and blends them before each step, so there are "
         "no seams to fix. The line under Denoise tells how many tiles and model calls per step.")
    return g


def edit_thumbnail(title: str, sub: str, left: Image.Image, left_caption: str, rounds: int,
                   mask: Image.Image | None = None,
                   mask_caption: str = "Load Image (as Mask): white = edit", strength: float = 0.5) -> Image.Image:
    img, d = blank_thumbnail(title, sub)
    picture(img, d, left, (16, 76, 240, 244), left_caption)
    if mask is not None:
        picture(img, d, mask, (272, 76, 496, 244), mask_caption)
    else:
        picture(img, d, noisy(left.convert("RGB").resize((112, 84)), strength, seed=1), (272, 76, 496, 244),
                f"Add Noise, strength {strength:g}")
    y = 290
    w = THUMB_SIZE[0]
    boxes = ["1 \u00b7 Encode"] + ["2 \u00b7 Add Noise", "3 \u00b7 Denoise"] * rounds + ["4 \u00b7 Decode"]
    bw = (w - 32 - 8 * (len(boxes) - 1)) / len(boxes)
    for i, label in enumerate(boxes):
        x0 = 16 + i * (bw + 8)
        box(d, (int(x0), y, int(x0 + bw), y + 50), label.split(" \u00b7 ")[0], label.split(" \u00b7 ")[1],
            step=int(label[0]))
        if i:
            arrow(d, (x0 - 8, y + 25), (x0 - 1, y + 25), width=2, head=4)
    return img


def edit_thumbnails() -> dict:
    """Each editing example's thumbnail, drawn when called: {name: () -> Image}. Its numbers are the workflow's
    (tests/test_packaging.py reads the drawn text back against each workflow)."""
    strokes, mask = draw_strokes()
    region, region_mask = draw_region()
    strength_map = draw_strength_map()
    remove, remove_mask = draw_remove()
    return {
        "sdedit_strokes": lambda: edit_thumbnail("SDEdit  strokes to picture", "flat colour strokes, a mask, strength 0.5",
                                                 strokes, "Load Image: stroke painting", 1, mask),
        "sdedit_repeats": lambda: edit_thumbnail("SDEdit  repeats  K = 3",
                                                 "Add Noise, then Denoise, three times: a new seed each round",
                                                 Image.open(SAMPLE), "Load Image", REPEATS, strength=0.5),
        "sdedit_region": lambda: edit_thumbnail("SDEdit  region at the model's size",
                                                "2048 x 1536 picture, 128 x 128 mask, crop_to_mask",
                                                region, "Load Image: 2048 x 1536", 1, region_mask),
        "sdedit_strength_map": lambda: edit_thumbnail("SDEdit  a strength per pixel",
                                                      "strength 0.8 on a grey map: apple 0.4, table kept",
                                                      Image.open(SAMPLE), "Load Image", 1, strength_map,
                                                      "the map: white 1, grey 0.5, black = keep"),
        "sdedit_remove": lambda: edit_thumbnail("SDEdit  remove an object",
                                                "masked_content fill, strength 0.75, prompt: the empty table",
                                                remove, "Load Image: a mug on a table", 1, remove_mask, strength=0.75),
        "sdedit_upscale": lambda: edit_thumbnail("SDEdit  upscale",
                                                 f"Upscale Image By {UPSCALE_BY:g}x, then SDEdit at {UPSCALE_STRENGTH:g} "
                                                 "on blended 512-px tiles",
                                                 Image.open(SAMPLE), f"Load Image, then {UPSCALE_BY:g}x", 1,
                                                 strength=UPSCALE_STRENGTH),
    }


def edit_examples() -> list[Path]:
    """Writes the stroke painting, its mask and the strokes and repeats examples; returns the paths written."""
    strokes, mask = draw_strokes()
    save_flat_png(strokes, STROKES)
    mask.save(STROKES_MASK, format="PNG", optimize=True)
    region, region_mask = draw_region()
    save_flat_png(region, REGION)
    region_mask.save(REGION_MASK, format="PNG", optimize=True)
    strength_map = draw_strength_map()
    strength_map.save(MAP_MASK, format="PNG", optimize=True)
    remove, remove_mask = draw_remove()
    save_flat_png(remove, REMOVE)
    remove_mask.save(REMOVE_MASK, format="PNG", optimize=True)
    written = [STROKES, STROKES_MASK, REGION, REGION_MASK, MAP_MASK, REMOVE, REMOVE_MASK]
    thumbnails = edit_thumbnails()
    for name, graph, title in [
        ("sdedit_strokes", strokes_graph(), "SDEdit strokes \u2192 picture"),
        ("sdedit_repeats", repeats_graph(), "SDEdit repeats (K = 3)"),
        ("sdedit_region", region_graph(), "SDEdit a small region of a big picture"),
        ("sdedit_strength_map", strength_map_graph(), "SDEdit strength per pixel (grey map)"),
        ("sdedit_remove", remove_graph(), "SDEdit remove an object (masked_content fill)"),
        ("sdedit_upscale", upscale_graph(), "SDEdit upscale (tiled)"),
    ]:
        thumb = thumbnails[name]()
        ui, api, jpg = EXAMPLES / f"{name}.json", API / f"{name}.json", EXAMPLES / f"{name}.jpg"
        write_json(ui, graph.ui(WORKFLOW_IDS[name], title))
        write_json(api, graph.api())
        save_thumbnail(thumb, jpg)
        written += [ui, api, jpg]
    return written
