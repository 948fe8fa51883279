"""Runs the example workflow (example_workflows/api/sdedit_img2img.json) headless on a real ComfyUI server and
prints the PNG's path. The README's first command: bash scripts/img2img.sh [options].

ComfyUI:     --comfyui PATH, or COMFYUI_PATH=PATH (the same thing); img2img.sh falls back to ~/comfy/ComfyUI and
             sets one up only where there is none.
Python:      the one that runs that ComfyUI: img2img.sh finds its venv/ or .venv/, or the portable build's
             python_embeded; name another with --python PATH or COMFYUI_PYTHON. It must have ComfyUI's
             requirements; where it lacks some, the run says which and the command that installs them.
Checkpoint:  --ckpt PATH_OR_NAME (an SD1.5 file, or a name in ComfyUI/models/checkpoints); else
             v1-5-pruned-emaonly-fp16.safetensors where it is in models/checkpoints or was downloaded; else a
             small random-weight test checkpoint, built once into ~/.cache/comfyui-sdedit (630 MB; $SDEDIT_CACHE
             moves it): THE PICTURE WILL BE NOISE.
Real weights in one step: --download fetches that SD1.5 file (2.13 GB, from Comfy-Org's archive on Hugging Face,
             the one ComfyUI's docs name) into the workspace (out/checkpoints/); --download comfyui puts it into
             your ComfyUI's models/checkpoints instead, for ComfyUI itself to use. Progress is shown, an
             interrupted download resumes, and the file is checked (size, SHA-256) before it is used.
Set-up:      only where there is no ComfyUI: ComfyUI v0.3.64 into ~/comfy/ComfyUI and .venv (about 3 GB; the
             registry's torch is the CUDA build: without an NVIDIA GPU, SDEDIT_TORCH_INDEX=
             https://download.pytorch.org/whl/cpu takes PyTorch's CPU build, under 1 GB).
Device:      where your ComfyUI would run (CUDA, Apple MPS, Intel XPU, else the CPU); --cpu forces the CPU.
             Expected time at 20 steps (strength 0.6 runs 12) on the example picture: the test checkpoint
             1.5 min from the command to the PNG on an idle 2-core CPU (start-up included); real SD1.5 a few
             minutes on a CPU, seconds on a GPU.
Writes:      only the workspace (--out, default out/ in this repository): ComfyUI's --base-directory, holding
             the pack's link, the input copy, the outputs and comfyui.log. Your ComfyUI's custom_nodes/ and
             models/ are only read (--download comfyui writes the one file you asked for).
"""
import argparse
import json
import os
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
for _path in (HERE, HERE.parent):  # sdedit_cli, and the harness package
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from harness import API_WORKFLOW, REPO, SAMPLE_IMAGE, ComfyServer, PromptFailed, find_checkpoint, prepare_workspace  # noqa: E402
from sdedit_cli import download, environment  # noqa: E402
from sdedit_cli.template import make_template  # noqa: E402

NOISE_NOTE = "random test weights: this picture is noise, not an edit"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comfyui", type=pathlib.Path, default=os.environ.get("COMFYUI_PATH") or None,
                        help="the ComfyUI folder (the one with main.py); default: $COMFYUI_PATH")
    parser.add_argument("--python", default=os.environ.get("COMFYUI_PYTHON") or None,
                        help="the Python that runs that ComfyUI (default: img2img.sh finds it; $COMFYUI_PYTHON)")
    parser.add_argument("--ckpt", help="SD1.5 checkpoint: a path, or a name in ComfyUI/models/checkpoints")
    parser.add_argument("--download", nargs="?", const="workspace", choices=("workspace", "comfyui"),
                        help="fetch the real SD1.5 checkpoint (2.13 GB) into the workspace, or with `comfyui` into "
                             "your ComfyUI's models/checkpoints, and use it")
    parser.add_argument("--download-from", metavar="URL", default=download.SD15["url"],
                        help="a mirror of the same file (checked against the same size and SHA-256)")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even where there is a GPU")
    parser.add_argument("--image", type=pathlib.Path, default=SAMPLE_IMAGE, help="input picture (default: the sample)")
    parser.add_argument("--prompt", help="positive prompt (default: the workflow's)")
    parser.add_argument("--negative", help="negative prompt (default: the workflow's)")
    parser.add_argument("--strength", type=float, help="denoising strength 0-1 (default: 0.6)")
    parser.add_argument("--seed", type=int, help="noise seed (default: 0)")
    parser.add_argument("--steps", type=int, help="sampling steps (default: 20)")
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "out", help="workspace (default: out/)")
    return parser.parse_args(argv)


def choose_checkpoint(args, comfyui: pathlib.Path, workspace: pathlib.Path) -> tuple[pathlib.Path, bool]:
    """(the checkpoint, whether it is the random-weight test one)."""
    name = download.SD15["name"]
    in_comfyui, in_workspace = comfyui / "models" / "checkpoints" / name, workspace / "checkpoints" / name
    if args.download:
        dest = in_comfyui if args.download == "comfyui" else in_workspace
        try:
            path = download.fetch(args.download_from, dest, download.SD15["size"], download.SD15["sha256"])
        except download.DownloadFailed as failure:
            sys.exit(f"--download: {failure}")
        print(f"SD1.5 checkpoint: {path} ({download.SD15['license']})", file=sys.stderr)
        return path, False
    if args.ckpt is None:
        for candidate in (in_comfyui, in_workspace):
            if candidate.is_file():
                print(f"Checkpoint: {candidate} (no --ckpt given)", file=sys.stderr)
                return candidate, False
        path = find_checkpoint(None, comfyui, quiet=True)  # built once (about a minute), then cached
        print(f"\n*** No real weights: no --ckpt, and no {name} in models/checkpoints or the workspace.\n"
              f"*** The run uses a small random-weight test checkpoint ({path}), so THE PICTURE WILL BE NOISE.\n"
              "*** For a real picture: --download (2.13 GB, once) or --ckpt /path/to/an/SD1.5.safetensors.\n",
              file=sys.stderr)
        return path, True
    return find_checkpoint(args.ckpt, comfyui), False


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.python and pathlib.Path(args.python).absolute() != pathlib.Path(sys.executable).absolute():
        # Run by the Python that runs ComfyUI (the server is started with the same one).
        os.execv(args.python, [args.python, __file__, *(argv if argv is not None else sys.argv[1:])])
    if args.comfyui is None:
        sys.exit("Where is ComfyUI? Give its folder: --comfyui PATH or COMFYUI_PATH=PATH "
                 "(or run bash scripts/img2img.sh, which sets one up where there is none).")
    comfyui = args.comfyui.expanduser().resolve()
    if not (comfyui / "main.py").is_file() or not (comfyui / "comfy").is_dir():
        sys.exit(f"--comfyui {comfyui}: not a ComfyUI folder (no main.py and comfy/ there).")
    if not args.image.is_file():
        sys.exit(f"--image {args.image}: no such file.")
    optional_missing = environment.check(comfyui, sys.executable)
    if optional_missing:
        print(f"(Not installed, and not needed by this run: {', '.join(optional_missing)}; ComfyUI's log says so.)",
              file=sys.stderr)

    workspace = args.out.expanduser().resolve()
    checkpoint, random_weights = choose_checkpoint(args, comfyui, workspace)
    template = make_template(json.loads(API_WORKFLOW.read_text()), ckpt_name=checkpoint.name, strength=args.strength,
                             prompt=args.prompt, negative=args.negative, steps=args.steps)
    prompt = template.prompt_for(args.image.name, args.seed)

    where, cpu = environment.device(args.cpu)
    base = prepare_workspace(workspace, checkpoint, [args.image])
    print(f"Starting ComfyUI ({comfyui}) on {where}; its log: {base / 'comfyui.log'} "
          "(harmless lines in it: README, 'What the log says')")
    extra_args = ["--preview-method", "latent2rgb"]
    if "--database-url" in (comfyui / "comfy" / "cli_args.py").read_text(errors="replace"):
        # Its default is ComfyUI/user/comfyui.db, in the user's folder: the workspace's own instead.
        extra_args += ["--database-url", f"sqlite:///{base / 'user' / 'comfyui.db'}"]
    with ComfyServer(comfyui, base, cpu=cpu, extra_args=extra_args) as server:
        print("Running the workflow (" + ("about a minute on a CPU" if cpu else "seconds on a GPU") + ")...")
        try:
            pngs = server.run_images(prompt)
        except PromptFailed as failure:
            sys.exit(f"The workflow failed: {failure}")
    for png in pngs:
        print(f"Wrote {png}" + (f"  ({NOISE_NOTE}; --download for real weights)" if random_weights else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
