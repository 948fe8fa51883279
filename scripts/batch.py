"""Batch img2img: one exported API workflow over a folder of images, on Ray, resumable.

    python scripts/batch.py --comfyui PATH --workflow API.json --input DIR --output DIR [--workers N]
                            [--address RAY_ADDRESS] [--ckpt PATH_OR_NAME] [--strength S] [--seed N] [--prompt TEXT]

Ray Data streams the images (read on the driver's node) to an actor pool; each actor owns one ComfyUI server
(harness/server.py), started once and kept for all its images, so the model loads once per worker.
The driver writes every output (atomically) and a manifest line per image into --output, so the input and
output folders are only ever touched by the driver: a cluster needs no shared storage.
A re-run with the same arguments skips what is done; different settings in the same --output are refused.
The parts: sdedit_cli/template.py (the workflow and each image's prompt), sdedit_cli/output_folder.py (the lock,
the manifest, the atomic writes), sdedit_cli/pipeline.py (Ray).
"""
import argparse
import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
for _path in (HERE, HERE.parent):  # sdedit_cli, and the harness package
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from harness import find_checkpoint  # noqa: E402  (after the sys.path lines)
from sdedit_cli.output_folder import OutputFolder, SettingsChanged, list_inputs  # noqa: E402
from sdedit_cli.pipeline import execute, say  # noqa: E402
from sdedit_cli.template import WorkflowError, image_seed, make_template  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comfyui", type=pathlib.Path, required=True, help="the ComfyUI checkout")
    parser.add_argument("--workflow", type=pathlib.Path, required=True, help="an API-format workflow (Export (API)) "
                        "with one LoadImage and one SaveImage")
    parser.add_argument("--input", type=pathlib.Path, required=True, help="folder of images (read, never modified)")
    parser.add_argument("--output", type=pathlib.Path, required=True, help="folder for the PNGs and manifest.jsonl")
    parser.add_argument("--workers", type=int, help="ComfyUI servers (default: one per GPU, else 1)")
    parser.add_argument("--address", help="a Ray cluster to join, from one of its machines (auto, or HEAD_IP:6379); "
                        "default: a local Ray instance on this machine")
    parser.add_argument("--ckpt", help="checkpoint: a .safetensors path or a name in ComfyUI/models/checkpoints "
                        "(default: the small test checkpoint)")
    parser.add_argument("--strength", type=float, help="SDEdit strength 0-1 (default: the workflow's)")
    parser.add_argument("--seed", type=int, help="base seed; each image's seed is derived from it and the file name "
                        "(default: 0)")
    parser.add_argument("--prompt", help="positive prompt (default: the workflow's)")
    parser.add_argument("--redo", action="store_true", help="redo every image whose result was made with other "
                        "settings (instead of refusing); outputs of earlier runs in --output are replaced")
    parser.add_argument("--retry-failed", action="store_true", help="run again the images that failed on an earlier "
                        "run (default: they are skipped, their error stays in the manifest)")
    parser.add_argument("--workdir", type=pathlib.Path, help="where each worker makes its ComfyUI workspace "
                        "(default: a temporary folder; removed at the end)")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even where the cluster has GPUs")
    parser.add_argument("--threads", type=int, help="CPU threads per server (default: CPU cores // workers)")
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.strength is not None and not 0 <= args.strength <= 1:
        parser.error("--strength must be between 0 and 1")
    return args


def run(argv=None, on_result=None) -> dict:
    """The whole job; returns its summary. `on_result(row, monotonic_time)` sees every finished image (bench)."""
    args = parse_args(argv)
    comfyui = args.comfyui.resolve()
    input_dir, output_dir = args.input.resolve(), args.output.resolve()
    if not input_dir.is_dir():
        raise SystemExit(f"--input {args.input}: no such folder.")
    if output_dir == input_dir or input_dir in output_dir.parents:
        raise SystemExit(f"--output {args.output} is inside --input: the outputs would become inputs. "
                         "Choose a folder outside it.")
    try:
        workflow = json.loads(args.workflow.read_text())
    except (OSError, ValueError) as error:
        raise SystemExit(f"--workflow {args.workflow}: cannot read it as JSON ({error}).")
    flags = {"strength": args.strength, "prompt": args.prompt, "seed_given": args.seed is not None}
    # The workflow is checked before anything is started, with a placeholder for the checkpoint's name.
    has_loader = any(isinstance(n, dict) and n.get("class_type") == "CheckpointLoaderSimple" for n in workflow.values())
    try:
        make_template(workflow, ckpt_name=args.ckpt, **flags)
    except WorkflowError as error:
        raise SystemExit(f"--workflow {args.workflow}: {error}")
    checkpoint = find_checkpoint(args.ckpt, comfyui, prefix="[batch] ") if (has_loader or args.ckpt) else None
    template = make_template(workflow, ckpt_name=checkpoint.name if checkpoint else None, **flags)
    base_seed = args.seed if args.seed is not None else 0
    settings = {"workflow_file": str(args.workflow.resolve()), "ckpt": checkpoint.name if checkpoint else None,
                "ckpt_bytes": checkpoint.stat().st_size if checkpoint else None, "strength": args.strength,
                "prompt": args.prompt, "seed": base_seed}
    current = template.hash({k: v for k, v in settings.items() if k != "workflow_file"})

    with OutputFolder(output_dir) as folder:
        inputs = list_inputs(input_dir)
        todo, done_before, failed_before = folder.resume_plan(
            inputs, {**settings, "workflow_hash": current, "workflow": template.nodes}, current,
            lambda name: image_seed(base_seed, name), redo=args.redo, retry_failed=args.retry_failed)
        say(f"{len(inputs)} images in {input_dir}: {done_before} done earlier, {failed_before} failed earlier "
            f"(--retry-failed runs them again), {len(todo)} to run; workflow hash {current}")
        summary = {"total": len(inputs), "done_before": done_before, "failed_before": failed_before, "written": 0,
                   "failed": 0, "left": len(todo), "seconds": 0.0, "interrupted": False, "workflow_hash": current,
                   "manifest": str(folder.manifest_path)}
        if not todo:
            say("nothing to do.")
            return summary
        execute(args, comfyui, folder, checkpoint, template, current, todo, summary, on_result)
    report(summary)
    return summary


def report(summary: dict) -> None:
    rate = (summary["written"] + summary["failed"]) / max(summary["seconds"] / 60, 1e-9)
    if summary.get("stopped"):
        say(f"stopped by an error: {summary['stopped']}\n[batch] {summary['written']} written and {summary['failed']} "
            f"failed in this run, {summary['left']} left; the manifest keeps them. Fix the cause and run the same "
            "command again to resume.")
    elif summary["interrupted"]:
        say(f"interrupted: {summary['written']} written and {summary['failed']} failed in this run, {summary['left']} "
            "left. Run the same command again to resume.")
    else:
        say(f"finished: {summary['written']} written, {summary['failed']} failed, {summary['done_before']} done "
            f"earlier, {summary['failed_before']} failed earlier; {summary['seconds']} s, {rate:.1f} images/min. "
            f"Manifest: {summary['manifest']}")


def main(argv=None) -> int:
    try:
        summary = run(argv)
    except SettingsChanged as error:
        say(str(error))
        return 2
    if summary["interrupted"]:
        return 130
    if summary.get("stopped"):
        return 3
    return 1 if summary["failed"] or summary["failed_before"] else 0


if __name__ == "__main__":
    sys.exit(main())
