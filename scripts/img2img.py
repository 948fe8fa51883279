"""The main job: runs the example workflow headless on a real ComfyUI server and says where the PNG is.

    python scripts/img2img.py --comfyui PATH [--ckpt PATH_OR_NAME] [--image PNG] [--prompt TEXT] ...

Without --ckpt it uses the small random-weight test checkpoint (the picture will be noise).
Everything it writes goes under out/ (the server's --base-directory); nothing in ComfyUI is touched.
"""
import argparse
import json
import pathlib
import sys

from comfy_server import REPO, ComfyServer, find_checkpoint, prepare_workspace

WORKFLOW = REPO / "example_workflows" / "api" / "sdedit_img2img.json"
SAMPLE = REPO / "example_workflows" / "input" / "sdedit_example.png"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comfyui", type=pathlib.Path, required=True, help="the ComfyUI checkout")
    parser.add_argument("--ckpt", help="SD1.5 checkpoint: a path, or a name in ComfyUI/models/checkpoints")
    parser.add_argument("--image", type=pathlib.Path, default=SAMPLE, help="input picture (default: the sample)")
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

    prompt = json.loads(WORKFLOW.read_text())
    by_type = {n["class_type"]: n for n in prompt.values()}
    by_type["CheckpointLoaderSimple"]["inputs"]["ckpt_name"] = checkpoint.name
    by_type["LoadImage"]["inputs"]["image"] = args.image.name
    positive, negative = (n for n in prompt.values() if n["class_type"] == "CLIPTextEncode")
    for node, text in ((positive, args.prompt), (negative, args.negative)):
        if text is not None:
            node["inputs"]["text"] = text
    for key, value in (("strength", args.strength), ("seed", args.seed)):
        if value is not None:
            by_type["SDEditAddNoise"]["inputs"][key] = value
    if args.steps is not None:
        by_type["SDEditSampler"]["inputs"]["steps"] = args.steps

    base = prepare_workspace(args.out.resolve(), checkpoint, [args.image])
    print(f"Starting ComfyUI ({args.comfyui}) on the CPU; log: {base / 'comfyui.log'}")
    with ComfyServer(args.comfyui, base) as server:
        status, response = server.queue(prompt)
        if status != 200:
            sys.exit(f"ComfyUI refused the workflow: {json.dumps(response, indent=1)}")
        print("Running the workflow (a minute or two on a CPU)...")
        entry = server.wait(response["prompt_id"])
    if entry["status"]["status_str"] != "success":
        errors = [m[1].get("exception_message") for m in entry["status"]["messages"] if m[0] == "execution_error"]
        sys.exit(f"The workflow failed: {errors}")
    for png in server.saved_images(entry):
        print(f"Wrote {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
