"""The docs' editing figures: runs an example's API twin (example_workflows/api/) headless on a real ComfyUI
server and puts its input, its mask and the result side by side.

    python tools/edit_figure.py --comfyui PATH [--example sdedit_strokes|sdedit_strength_map]
        [--ckpt PATH_OR_NAME] [--steps N] [--out JPG]

Without --ckpt it uses the small random-weight test checkpoint: the masked part of the result is then
noise (the kept frame is still the input's pixels). With a real SD1.5 checkpoint it is the picture.
"""
import argparse
import json
import pathlib
import sys
import tempfile

from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the harness package
from harness import EXAMPLES, REPO, ComfyServer, PromptFailed, find_checkpoint, prepare_workspace  # noqa: E402

# example: (picture, mask, captions of the two)
FIGURES = {
    "sdedit_strokes": ("sdedit_strokes.png", "sdedit_strokes_mask.png",
                       ("input: stroke painting", "mask: white = edit")),
    "sdedit_strength_map": ("sdedit_example.png", "sdedit_strength_map_mask.png",
                            ("input", "map: white 1, grey 0.5, black keep")),
}


def side_by_side(pictures: list[Image.Image], captions: list[str]) -> Image.Image:
    w, h = pictures[0].size
    sheet = Image.new("RGB", (len(pictures) * (w + 8) + 8, h + 36), (32, 34, 40))
    draw = ImageDraw.Draw(sheet)
    for i, (pic, caption) in enumerate(zip(pictures, captions)):
        x = 8 + i * (w + 8)
        sheet.paste(pic.convert("RGB").resize((w, h)), (x, 8))
        draw.text((x + w / 2, h + 22), caption, font=ImageFont.load_default(size=16), fill=(235, 238, 242),
                  anchor="mm")
    return sheet


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comfyui", type=pathlib.Path, required=True, help="the ComfyUI checkout")
    parser.add_argument("--ckpt", help="SD1.5 checkpoint: a path, or a name in ComfyUI/models/checkpoints")
    parser.add_argument("--steps", type=int, help="sampling steps (default: the workflow's 20)")
    parser.add_argument("--example", choices=sorted(FIGURES), default="sdedit_strokes")
    parser.add_argument("--out", type=pathlib.Path, help="default: docs/images/EXAMPLE.jpg")
    args = parser.parse_args()
    picture, mask, captions = FIGURES[args.example]
    inputs = [EXAMPLES / "input" / picture, EXAMPLES / "input" / mask]
    out = args.out or REPO / "docs" / "images" / f"{args.example}.jpg"
    checkpoint = find_checkpoint(args.ckpt, args.comfyui)
    prompt = json.loads((EXAMPLES / "api" / f"{args.example}.json").read_text())
    for node in prompt.values():
        if node["class_type"] == "CheckpointLoaderSimple":
            node["inputs"]["ckpt_name"] = checkpoint.name
        if node["class_type"] == "SDEditSampler" and args.steps:
            node["inputs"]["steps"] = args.steps
    with tempfile.TemporaryDirectory() as tmp:
        base = prepare_workspace(pathlib.Path(tmp), checkpoint, inputs)
        with ComfyServer(args.comfyui, base) as server:
            try:
                [png] = server.run_images(prompt)
            except PromptFailed as failure:
                sys.exit(f"the workflow failed: {failure}")
            result = Image.open(png).copy()
    out.parent.mkdir(parents=True, exist_ok=True)
    tag = "result (random test checkpoint: noise)" if args.ckpt is None else f"result ({checkpoint.name})"
    figure = side_by_side([Image.open(inputs[0]), Image.open(inputs[1]), result], [*captions, tag])
    figure.save(out, format="JPEG", quality=88, optimize=True)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
