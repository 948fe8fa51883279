"""The video example: a tiny input video (example_workflows/input/sdedit_video.mp4) and sdedit_video, its UI
workflow, API twin and thumbnail: Load Video → Get Video Components → the four nodes on Wan 2.1 text-to-video
1.3B → Create Video (the input's frame rate and sound) → Save Video, all the host's own video nodes.

The video is 6 frames of 96 x 64 at 16 fps (Wan's rate): 6 is not 1 + 4k on purpose, the frame count Encode
pads in time and Decode trims back. It is drawn with Pillow and written with PyAV (which ComfyUI's
requirements install) as H.264 in MP4, single-threaded and bit-exact, so it is the same file every time.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from PIL import Image, ImageDraw

from .common import (API, BOX_EDGE, DIM, EXAMPLES, INPUT, THUMB_SIZE, arrow, blank_thumbnail, box, font, noisy,
                     save_thumbnail, write_json)
from .editing import CROP_OFF, ENCODE_SOCKETS, NOISE_SOCKETS, SAMPLER_SOCKETS, Graph, note

VIDEO = INPUT / "sdedit_video.mp4"
VIDEO_SIZE = (96, 64)
VIDEO_FRAMES = 6  # not 1 + 4k: Encode pads it to 9 in time for Wan's VAE, Decode gives 6 back
VIDEO_FPS = 16
WORKFLOW_ID = "c5d9f3a7-2e4b-4c6d-8f1a-7b9c0d2e4f6a"
# The Wan 2.1 files as ComfyUI's own Wan templates name them (Comfy-Org's repackaged release).
REPACKAGED = "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files"
WAN_UNET = "wan2.1_t2v_1.3B_fp16.safetensors"
WAN_TEXT = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"
WAN_VAE = "wan_2.1_vae.safetensors"
VIDEO_PROMPT = "a red apple rolling across a wooden table, photo, soft daylight, detailed"
VIDEO_NEGATIVE = "static, blurry, low quality, distorted, deformed, watermark, text"
VIDEO_STRENGTH = 0.4  # keeps each frame's layout and the motion, renders the drawing anew
# Denoise as ComfyUI's Wan 2.1 text-to-video template samples: 30 steps, cfg 6, uni_pc on the simple schedule
# (the model's own shift, 8, from the host's Wan 2.1 model class); the tiling widgets at their defaults.
VIDEO_SAMPLER = {"steps": 30, "cfg": 6.0, "sampler_name": "uni_pc", "scheduler": "simple",
                 "step_mode": "proportional", "tiling": "off", "tile_size": 0, "tile_overlap": 128, "tile_batch": 0}


def draw_frames() -> list[Image.Image]:
    """A child's drawing of a red apple rolling left to right across a table, one frame per 1/16 s (drawn at
    4x and scaled down, so the edges are smooth)."""
    scale = 4
    w, h = VIDEO_SIZE[0] * scale, VIDEO_SIZE[1] * scale
    frames = []
    for i in range(VIDEO_FRAMES):
        img = Image.new("RGB", (w, h), (236, 228, 206))
        d = ImageDraw.Draw(img)
        d.rectangle((0, 0, w, 150), fill=(200, 220, 236))                       # the wall
        d.rectangle((0, 150, w, h), fill=(168, 118, 72))                        # the table
        d.line([(0, 150), (w, 150)], fill=(120, 80, 46), width=6)
        cx, cy, r = 80 + 36 * i, 150 + 20 - 40, 40                              # the apple, rolling right
        d.ellipse((cx - r + 6, cy + r - 10, cx + r + 10, cy + r + 8), fill=(132, 92, 56))  # its shadow
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(206, 44, 40), outline=(120, 20, 20), width=5)
        d.ellipse((cx - 24, cy - 26, cx - 8, cy - 6), fill=(246, 170, 160))     # a highlight
        d.line([(cx, cy - r + 4), (cx + 6, cy - r - 16)], fill=(90, 56, 24), width=7)  # the stem
        frames.append(img.resize(VIDEO_SIZE, Image.Resampling.LANCZOS))
    return frames


def write_video(frames: list[Image.Image], path: Path, fps: int = VIDEO_FPS) -> Path:
    """H.264 in MP4 (what the host's Save Video writes), yuv420p, one thread and bit-exact flags: the same
    bytes on every run with the same PyAV."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format="mp4", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height = frames[0].size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.flags |= av.codec.context.Flags.bitexact
        stream.options = {"crf": "12", "preset": "medium", "threads": "1"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_image(frame).reformat(format="yuv420p")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def video_graph() -> Graph:
    g = Graph()
    unet = g.node("UNETLoader", (0, 40), (315, 82), [("unet_name", "COMBO", True), ("weight_dtype", "COMBO", True)],
                  [WAN_UNET, "default"], [("MODEL", "MODEL")], api={"unet_name": WAN_UNET, "weight_dtype": "default"},
                  models=[{"name": WAN_UNET, "url": f"{REPACKAGED}/diffusion_models/{WAN_UNET}",
                           "directory": "diffusion_models"}])
    clip = g.node("CLIPLoader", (0, 170), (315, 106), [("clip_name", "COMBO", True), ("type", "COMBO", True),
                                                       ("device", "COMBO", True)],
                  [WAN_TEXT, "wan", "default"], [("CLIP", "CLIP")],
                  api={"clip_name": WAN_TEXT, "type": "wan", "device": "default"},
                  models=[{"name": WAN_TEXT, "url": f"{REPACKAGED}/text_encoders/{WAN_TEXT}",
                           "directory": "text_encoders"}])
    vae = g.node("VAELoader", (0, 320), (315, 58), [("vae_name", "COMBO", True)], [WAN_VAE], [("VAE", "VAE")],
                 api={"vae_name": WAN_VAE},
                 models=[{"name": WAN_VAE, "url": f"{REPACKAGED}/vae/{WAN_VAE}", "directory": "vae"}])
    pos = g.node("CLIPTextEncode", (370, 0), (420, 130), [("clip", "CLIP", False), ("text", "STRING", True)],
                 [VIDEO_PROMPT], [("CONDITIONING", "CONDITIONING")], "CLIP Text Encode (Positive Prompt)",
                 api={"text": VIDEO_PROMPT})
    neg = g.node("CLIPTextEncode", (370, 180), (420, 100), [("clip", "CLIP", False), ("text", "STRING", True)],
                 [VIDEO_NEGATIVE], [("CONDITIONING", "CONDITIONING")], "CLIP Text Encode (Negative Prompt)",
                 api={"text": VIDEO_NEGATIVE})
    g.link(clip, 0, pos, "clip", "CLIP")
    g.link(clip, 0, neg, "clip", "CLIP")
    load = g.node("LoadVideo", (0, 420), (315, 340), [("file", "COMBO", True)], [VIDEO.name, "image"],
                  [("VIDEO", "VIDEO")], api={"file": VIDEO.name})
    parts = g.node("GetVideoComponents", (370, 330), (260, 70), [("video", "VIDEO", False)], [],
                   [("images", "IMAGE"), ("audio", "AUDIO"), ("fps", "FLOAT")])
    g.link(load, 0, parts, "video", "VIDEO")
    enc = g.node("SDEditEncode", (370, 460), (260, 200), ENCODE_SOCKETS, [0, "pad", *CROP_OFF.values()],
                 [("latent", "LATENT")], api={"mask_feather": 0, "size_mode": "pad", **CROP_OFF})
    g.link(parts, 0, enc, "image", "IMAGE")
    g.link(vae, 0, enc, "vae", "VAE")
    noise = g.node("SDEditAddNoise", (680, 420), (290, 130), NOISE_SOCKETS, [VIDEO_STRENGTH, 0, "fixed"],
                   [("noisy_latent", "LATENT")], api={"strength": VIDEO_STRENGTH, "seed": 0})
    g.link(unet, 0, noise, "model", "MODEL")
    g.link(enc, 0, noise, "latent", "LATENT")
    den = g.node("SDEditSampler", (680, 600), (315, 310), SAMPLER_SOCKETS, list(VIDEO_SAMPLER.values()),
                 [("latent", "LATENT"), ("trajectory", "LATENT")], api=dict(VIDEO_SAMPLER))
    g.link(unet, 0, den, "model", "MODEL")
    g.link(pos, 0, den, "positive", "CONDITIONING")
    g.link(neg, 0, den, "negative", "CONDITIONING")
    g.link(noise, 0, den, "noisy_latent", "LATENT")
    dec = g.node("SDEditDecode", (1040, 420), (230, 70), [("latent", "LATENT", False), ("vae", "VAE", False),
                                                          ("color_anchor", "FLOAT", True)], [0.0],
                 [("image", "IMAGE")], api={"color_anchor": 0.0})
    g.link(den, 0, dec, "latent", "LATENT")
    g.link(vae, 0, dec, "vae", "VAE")
    make = g.node("CreateVideo", (1040, 540), (230, 78), [("images", "IMAGE", False), ("fps", "FLOAT", True),
                                                          ("audio", "AUDIO", False)],
                  [float(VIDEO_FPS)], [("VIDEO", "VIDEO")])
    g.link(dec, 0, make, "images", "IMAGE")
    g.link(parts, 2, make, "fps", "FLOAT")     # the input's frame rate ...
    g.link(parts, 1, make, "audio", "AUDIO")   # ... and its sound, if it has any
    save = g.node("SaveVideo", (1320, 420), (420, 460), [("video", "VIDEO", False),
                                                         ("filename_prefix", "STRING", True),
                                                         ("format", "COMBO", True), ("codec", "COMBO", True)],
                  ["sdedit/video", "auto", "auto"], [],
                  api={"filename_prefix": "sdedit/video", "format": "auto", "codec": "auto"})
    g.link(make, 0, save, "video", "VIDEO")
    note(g, (0, 800), (640, 210), "Note: SDEdit on a video (Wan 2.1)",
         "The four nodes take a video as they take a picture: **Get Video Components** gives its frames, "
         "Encode turns them into one Wan latent (padded in time to the 1 + 4k frames Wan's VAE keeps), and "
         "Decode trims the padding, so N frames come back as N. **Create Video** puts them together at the "
         "input's frame rate, with its sound.\n\n**strength 0.4** keeps each frame's layout and the motion; "
         "higher follows the prompt more. Wan 2.1 1.3B draws best near 832 x 480: load your own video (sizes "
         "that are multiples of 16). Needs the three Wan 2.1 files named in the loaders (models/diffusion_models, "
         "models/text_encoders, models/vae).")
    return g


def video_thumbnail(frames: list[Image.Image]) -> Image.Image:
    img, d = blank_thumbnail("SDEdit  video  (Wan 2.1)",
                             "Load Video, the four nodes on every frame at once, Save Video: 6 frames in, 6 out")
    w = THUMB_SIZE[0]
    fw, fh = 72, 48
    x0 = (w - len(frames) * (fw + 6) + 6) // 2
    for row, (y, caption, amount) in enumerate([(78, "Load Video: 6 frames, 16 fps", None),
                                               (160, f"Add Noise, strength {VIDEO_STRENGTH}", 0.4)]):
        for i, frame in enumerate(frames):
            shown = frame if amount is None else noisy(frame, amount, seed=i)
            x = x0 + i * (fw + 6)
            img.paste(shown.resize((fw, fh), Image.Resampling.LANCZOS), (x, y))
            d.rectangle((x, y, x + fw - 1, y + fh - 1), outline=BOX_EDGE, width=1)
        d.text((w / 2, y + fh + 12), caption, font=font(12), fill=DIM, anchor="mm")
    y = 258
    labels = [("Frames", "of the video", None), ("1", "Encode", 1), ("2", "Add Noise", 2), ("3", "Denoise", 3),
              ("4", "Decode", 4), ("Video", "create, save", None)]
    bw = (w - 32 - 8 * (len(labels) - 1)) / len(labels)
    for i, (title, sub, step) in enumerate(labels):
        left = 16 + i * (bw + 8)
        box(d, (int(left), y, int(left + bw), y + 50), title, sub, step=step)
        if i:
            arrow(d, (left - 8, y + 25), (left - 1, y + 25), width=2, head=4)
    d.text((w / 2, 340), "Wan 2.1 text-to-video 1.3B  \u00b7  umt5-xxl  \u00b7  Wan 2.1 VAE", font=font(12),
           fill=DIM, anchor="mm")
    d.text((w / 2, 360), "Encode pads the frames in time to 1 + 4k, Decode trims them back", font=font(12),
           fill=DIM, anchor="mm")
    return img


def video_examples() -> list[Path]:
    """Writes the input video and the sdedit_video example; returns the paths written."""
    frames = draw_frames()
    write_video(frames, VIDEO)
    graph = video_graph()
    ui, api, jpg = EXAMPLES / "sdedit_video.json", API / "sdedit_video.json", EXAMPLES / "sdedit_video.jpg"
    write_json(ui, graph.ui(WORKFLOW_ID, "SDEdit video (Wan 2.1)"))
    write_json(api, graph.api())
    save_thumbnail(video_thumbnail(frames), jpg)
    return [VIDEO, ui, api, jpg]


def video_thumbnails() -> dict:
    """The video example's thumbnail, drawn when called: {name: () -> Image}."""
    return {"sdedit_video": lambda: video_thumbnail(draw_frames())}
