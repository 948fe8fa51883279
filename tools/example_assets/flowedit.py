"""The FlowEdit example: the img2img graph with SDEdit 3 · FlowEdit in place of Denoise and a second prompt (the
source, what the picture shows; the target, what it should show). Built from the img2img example's own files, so
the two stay alike; the same green apple, edited to a red one."""
from __future__ import annotations

import copy
import json
from pathlib import Path

from PIL import Image

from .common import API, EXAMPLES, NEGATIVE, SAMPLE, arrow, blank_thumbnail, box, font, noisy, picture, \
    save_thumbnail, write_json

NAME = "sdedit_flowedit"
UI, API_FILE, THUMB = EXAMPLES / f"{NAME}.json", API / f"{NAME}.json", EXAMPLES / f"{NAME}.jpg"
SOURCE = "photo of perfect green apple with stem, water droplets, dramatic lighting"
TARGET = "photo of perfect red apple with stem, water droplets, dramatic lighting"
# steps, source_cfg, target_cfg, scheduler, step_mode, average, sample_last, tiling, tile_size, tile_overlap, tile_batch
WIDGETS = [28, 3.5, 9.0, "normal", "proportional", 1, 0, "off", 0, 128, 0]
STRENGTH = 0.7
FLOWEDIT_INPUTS = [("model", "MODEL"), ("source_positive", "CONDITIONING"), ("target_positive", "CONDITIONING"),
                   ("negative", "CONDITIONING"), ("noisy_latent", "LATENT")]
WIDGET_INPUTS = [("steps", "INT"), ("source_cfg", "FLOAT"), ("target_cfg", "FLOAT"), ("scheduler", "COMBO"),
                 ("step_mode", "COMBO"), ("average", "INT"), ("sample_last", "INT"), ("tiling", "COMBO"),
                 ("tile_size", "INT"), ("tile_overlap", "INT"), ("tile_batch", "INT")]
NOTE = ("**source prompt**: what the picture shows. **target prompt**: the same words with the ones to change "
        "changed. FlowEdit moves the picture by the difference between the two, so what both prompts say stays.\n\n"
        "**strength** (Add Noise) is the first level (the paper's n_max). The paper: SD3 50 steps at 0.66, cfg "
        "3.5 / 13.5; Flux dev 28 steps at 0.86, guidance 1.5 / 5.5.")


def workflows() -> tuple[dict, dict]:
    ui = json.loads((EXAMPLES / "sdedit_img2img.json").read_text())
    api = json.loads((API / "sdedit_img2img.json").read_text())
    ui = copy.deepcopy(ui)
    ui["id"] = "8c1e4f6a-2b7d-4e93-a5c0-1d9f3b7e6a21"
    nodes = {n["id"]: n for n in ui["nodes"]}
    # A target prompt (node 11) beside the source (node 2, retitled); link 14 feeds it its CLIP, 15 its output.
    nodes[2]["title"] = "CLIP Text Encode (Source Prompt)"
    nodes[2]["widgets_values"] = [SOURCE]
    target = copy.deepcopy(nodes[2])
    target.update(id=11, pos=[370, -170], title="CLIP Text Encode (Target Prompt)", widgets_values=[TARGET], order=4)
    target["inputs"][0]["link"] = 14
    target["outputs"][0]["links"] = [15]
    nodes[1]["outputs"][1]["links"].append(14)
    nodes[6]["widgets_values"][0] = STRENGTH
    flow = nodes[7]
    links = {"model": 7, "source_positive": 8, "target_positive": 15, "negative": 9, "noisy_latent": 10}
    flow.update(type="SDEditFlowEdit", size=[330, 300], widgets_values=WIDGETS)
    flow["inputs"] = [{"localized_name": n, "name": n, "type": t, "link": links[n]} for n, t in FLOWEDIT_INPUTS] + \
        [{"localized_name": n, "name": n, "type": t, "widget": {"name": n}, "link": None} for n, t in WIDGET_INPUTS]
    flow["properties"]["Node name for S&R"] = "SDEditFlowEdit"
    nodes[9]["widgets_values"] = ["sdedit/flowedit"]
    nodes[10].update(title="Note: FlowEdit", widgets_values=[NOTE])
    ui["nodes"] = [*ui["nodes"], target]
    for order, node in enumerate(sorted(ui["nodes"], key=lambda n: n["order"])):
        node["order"] = order
    ui["links"] = [link for link in ui["links"] if link[0] != 8] + [
        [8, 2, 0, 7, 1, "CONDITIONING"], [9, 3, 0, 7, 3, "CONDITIONING"], [10, 6, 0, 7, 4, "LATENT"],
        [14, 1, 1, 11, 0, "CLIP"], [15, 11, 0, 7, 2, "CONDITIONING"]]
    ui["links"] = sorted({link[0]: link for link in ui["links"]}.values())
    ui["last_node_id"], ui["last_link_id"] = 11, 15
    ui["groups"][0]["title"] = "SDEdit with FlowEdit"

    api = copy.deepcopy(api)
    api["2"]["inputs"]["text"] = SOURCE
    api["2"]["_meta"]["title"] = "CLIP Text Encode (Source Prompt)"
    api["11"] = {"inputs": {"text": TARGET, "clip": ["1", 1]}, "class_type": "CLIPTextEncode",
                 "_meta": {"title": "CLIP Text Encode (Target Prompt)"}}
    api["6"]["inputs"]["strength"] = STRENGTH
    api["7"] = {"inputs": {**dict(zip([n for n, _ in WIDGET_INPUTS], WIDGETS)), "model": ["1", 0],
                           "source_positive": ["2", 0], "target_positive": ["11", 0], "negative": ["3", 0],
                           "noisy_latent": ["6", 0]},
                "class_type": "SDEditFlowEdit", "_meta": {"title": "SDEdit 3 · FlowEdit"}}
    api["9"]["inputs"]["filename_prefix"] = "sdedit/flowedit"
    return ui, api


def draw_thumbnail(sample: Image.Image) -> Image.Image:
    img, d = blank_thumbnail("SDEdit  ·  FlowEdit", "change what the prompt asks, keep the rest of the picture")
    pic_in = (16, 76, 160, 184)
    picture(img, d, sample, pic_in, "Load Image")
    enc = (190, 100, 310, 160)
    box(d, enc, "1 \u00b7 Encode", "pixels to latent", step=1)
    pic_noise = (352, 76, 496, 184)
    small = sample.convert("RGB").resize((144, 108), Image.Resampling.LANCZOS)
    picture(img, d, noisy(small, STRENGTH, seed=0), pic_noise, f"2 \u00b7 Add Noise  (strength {STRENGTH})")
    arrow(d, (pic_in[2] + 4, 130), (enc[0] - 4, 130))
    arrow(d, (enc[2] + 4, 130), (pic_noise[0] - 8, 130))
    flow = (352, 236, 496, 300)
    box(d, flow, "3 \u00b7 FlowEdit", "source to target", step=3)
    dec = (206, 240, 314, 296)
    box(d, dec, "4 \u00b7 Decode", "latent to pixels", step=4)
    save = (16, 240, 168, 296)
    box(d, save, "Save Image", "sdedit/flowedit")
    arrow(d, ((pic_noise[0] + pic_noise[2]) / 2, pic_noise[3] + 22), ((flow[0] + flow[2]) / 2, flow[1] - 4))
    arrow(d, (flow[0] - 4, 268), (dec[2] + 4, 268))
    arrow(d, (dec[0] - 4, 268), (save[2] + 4, 268))
    for y, label, text, colour in ((318, "source", "green apple", (150, 200, 150)),
                                   (346, "target", "red apple", (230, 150, 150))):
        d.rounded_rectangle((16, y, 496, y + 24), radius=6, fill=(44, 48, 54), outline=(96, 110, 120), width=1)
        d.text((28, y + 12), label, font=font(12), fill=colour, anchor="lm")
        d.text((96, y + 12), f"\u201cphoto of perfect {text} with stem, \u2026\u201d", font=font(12), fill=(235, 238, 242),
               anchor="lm")
    return img


def flowedit_examples() -> list[Path]:
    ui, api = workflows()
    write_json(UI, ui)
    write_json(API_FILE, api)
    save_thumbnail(draw_thumbnail(Image.open(SAMPLE)), THUMB)
    assert NEGATIVE == api["3"]["inputs"]["text"]
    return [UI, API_FILE, THUMB]


def flowedit_thumbnails() -> dict:
    """The FlowEdit example's thumbnail, drawn when called (tools/make_example_assets.py thumbnails())."""
    return {NAME: lambda: draw_thumbnail(Image.open(SAMPLE))}
