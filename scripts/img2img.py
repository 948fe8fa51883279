"""The main job: runs the example workflow headless on a real ComfyUI server and says where the PNG is.

    python scripts/img2img.py --comfyui PATH [--ckpt PATH_OR_NAME] [--image PNG] [--prompt TEXT] ...

Without --ckpt it uses the small random-weight test checkpoint (the picture will be noise).
Everything it writes goes under out/ (the server's --base-directory); nothing in ComfyUI is touched.
"""
import argparse
import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
for _path in (HERE, HERE.parent):  # sdedit_cli, and the harness package
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from harness import API_WORKFLOW, REPO, SAMPLE_IMAGE, ComfyServer, PromptFailed, find_checkpoint, prepare_workspace  # noqa: E402
from sdedit_cli.template import make_template  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comfyui", type=pathlib.Path, required=True, help="the ComfyUI checkout")
    parser.add_argument("--ckpt", help="SD1.5 checkpoint: a path, or a name in ComfyUI/models/checkpoints")
    parser.add_argument("--image", type=pathlib.Path, default=SAMPLE_IMAGE, help="input picture (default: the sample)")
    parser.add_argument("--prompt", help="positive prompt (default: the workflow's)")
    parser.add_argument("--negative", help="negative prompt (default: the workflow's)")
    parser.add_argument("--strength", type=float, help="denoising strength 0-1 (default: 0.6)")
    parser.add_argument("--seed", type=int, help="noise seed (default: 0)")
    parser.add_argument("--steps", type=int, help="sampling steps (default: 20)")
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "out", help="workspace (default: out/)")
    args = parser.parse_args()

    if not args.image.is_file():
        sys.exit(f"--image {args.image}: no such file.")
    checkpoint = find_checkpoint(args.ckpt, args.comfyui)
    template = make_template(json.loads(API_WORKFLOW.read_text()), ckpt_name=checkpoint.name, strength=args.strength,
                             prompt=args.prompt, negative=args.negative, steps=args.steps)
    prompt = template.prompt_for(args.image.name, args.seed)

    base = prepare_workspace(args.out.resolve(), checkpoint, [args.image])
    print(f"Starting ComfyUI ({args.comfyui}) on the CPU; log: {base / 'comfyui.log'}")
    with ComfyServer(args.comfyui, base) as server:
        print("Running the workflow (a minute or two on a CPU)...")
        try:
            pngs = server.run_images(prompt)
        except PromptFailed as failure:
            sys.exit(f"The workflow failed: {failure}")
    for png in pngs:
        print(f"Wrote {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
