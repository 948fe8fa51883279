"""What the Ray path of scripts/batch.py costs per image, against posting the same prompts to one server directly.

    python bench/batch.py [--images 12] [--steps 20] [--out bench/results/batch.md]   (COMFYUI_PATH: ComfyUI)

Same workflow (example_workflows/api/sdedit_img2img.json), same images, same per-image seeds, same checkpoint (the
small random-weight test checkpoint unless --ckpt), same thread budget per server:
- direct: one ComfyServer, the prompts posted one after another; per image: POST to finished /history entry;
- batch, 1 and 2 workers: scripts/batch.py's run() on a local Ray instance; with one worker, per image: the
  interval between successive results reaching the driver, paired with that image's prompt time on its server
  (measured in the worker): the difference is what the Ray path adds.
Steady state: the first image of each server (model load) and server start are left out; medians.
The direct run is measured before and after the batch runs, to show the drift of a shared machine.
Prints a markdown table and writes it to --out.
"""
import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import sys
import tempfile
import time

import numpy as np
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "scripts")]  # the harness package; the batch command's modules
import harness  # noqa: E402
from sdedit_cli.template import image_seed, make_template  # noqa: E402

COMFYUI = harness.setup_host()


def load_batch():
    import importlib.util
    spec = importlib.util.spec_from_file_location("sdedit_batch", REPO / "scripts" / "batch.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # Ray's cloudpickle looks it up there
    spec.loader.exec_module(module)
    return module


def make_images(folder: pathlib.Path, n: int) -> list[str]:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = []
    for i in range(n):
        w, h = (96, 96) if i % 2 else (96, 72)
        Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(folder / f"im{i:03d}.png")
        names.append(f"im{i:03d}.png")
    return names


def direct(batch, workflow_path, checkpoint, folder, names, threads, seed) -> list[float]:
    template = make_template(json.loads(workflow_path.read_text()), ckpt_name=checkpoint.name, seed_given=True)
    base = harness.prepare_workspace(pathlib.Path(tempfile.mkdtemp(prefix="bench-direct-")), checkpoint,
                             [folder / n for n in names])
    times = []
    with harness.ComfyServer(COMFYUI, base, extra_args=("--preview-method", "none"),  # as the batch's workers
                     env={"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)},
                     die_with_parent=True) as server:
        for name in names:
            prompt = template.prompt_for(name, image_seed(seed, name))
            started = time.monotonic()
            server.run_images(prompt)[0].read_bytes()  # the batch reads the PNG too
            times.append(time.monotonic() - started)
    return times


def through_ray(batch, workflow_path, checkpoint, folder, workers, seed, threads=None) -> dict:
    finished = []  # (time at the driver, worker, seconds in the worker, seconds of the prompt on its server)
    out = pathlib.Path(tempfile.mkdtemp(prefix="bench-batch-"))
    started = time.monotonic()

    def seen(row, t):
        assert row["status"] == "ok", row["error"]
        finished.append((t, row["worker"], row["seconds"], row["prompt_seconds"], row["call_started"], row["call_ended"],
                         time.time()))

    summary = batch.run(["--comfyui", str(COMFYUI), "--workflow", str(workflow_path), "--input", str(folder),
                         "--output", str(out / "out"), "--workers", str(workers), "--ckpt", str(checkpoint),
                         "--seed", str(seed), "--cpu", *(["--threads", str(threads)] if threads else [])],
                        on_result=seen)
    wall = time.monotonic() - started
    assert summary["written"] == len(finished), summary
    first_of = {}
    for t, worker, *_ in finished:
        first_of.setdefault(worker, t)
    warm = max(first_of.values())  # every server has loaded the model by then
    steady = [f for f in finished if f[0] > warm]
    result = {"wall": wall, "n": len(finished), "prompt": statistics.median(f[3] for f in steady),
              "steady_per_min": 60 * len(steady) / (steady[-1][0] - warm),
              "end_to_end_per_min": 60 * len(finished) / wall}
    if workers == 1:
        # One server, images back to back: from one call's start to the next is one image's whole cost through Ray
        # (the worker's clock, so the driver's delivery delay, which overlaps the next image, stays out); minus the
        # same image's prompt time on its server, measured at the same moment, it is what the Ray path adds. Pairing
        # them keeps the other load of a shared machine out of the difference.
        pairs = [(b[4] - a[4], a[3]) for a, b in zip(finished, finished[1:])][1:]  # the first image loads the model
        result["interval"] = statistics.median(i for i, _ in pairs)
        result["overhead"] = statistics.median(i - p for i, p in pairs)
        result["overhead_mean"] = statistics.mean(i for i, _ in pairs) - statistics.mean(p for _, p in pairs)
        result["in_worker"] = statistics.median(f[2] - f[3] for f in finished[1:])  # input copy, PNG read
        result["delivery"] = statistics.median(f[6] - f[5] for f in finished[1:])  # worker's return -> driver
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--steps", type=int, default=8, help="workflow steps (strength 0.6: round(0.6 x steps) run)")
    parser.add_argument("--ckpt", type=pathlib.Path, help="a .safetensors checkpoint (default: the test checkpoint)")
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "bench" / "results" / "batch.md")
    args = parser.parse_args()
    from harness import checkpoint as test_checkpoint
    checkpoint = args.ckpt.resolve() if args.ckpt else test_checkpoint.ensure_checkpoint()
    batch = load_batch()
    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-batch-in-"))
    names = make_images(work / "in", args.images)
    workflow = json.loads((REPO / "example_workflows" / "api" / "sdedit_img2img.json").read_text())
    workflow["7"]["inputs"]["steps"] = args.steps
    workflow_path = work / "workflow.json"
    workflow_path.write_text(json.dumps(workflow))
    cpus, seed = os.cpu_count(), 11

    # The overhead is measured with one thread per server: on a shared machine more OpenMP threads than free cores
    # make a step's time swing by several times (measured here: 1.8 s vs 4-25 s per image), which would drown it.
    direct_before = direct(batch, workflow_path, checkpoint, work / "in", names, 1, seed)
    one = through_ray(batch, workflow_path, checkpoint, work / "in", 1, seed, threads=1)
    direct_after = direct(batch, workflow_path, checkpoint, work / "in", names, 1, seed)
    one_default = through_ray(batch, workflow_path, checkpoint, work / "in", 1, seed)
    two = through_ray(batch, workflow_path, checkpoint, work / "in", 2, seed)
    d_before, d_after = statistics.median(direct_before[1:]), statistics.median(direct_after[1:])
    d = statistics.median(direct_before[1:] + direct_after[1:])
    pct = 100 * one["overhead"] / one["prompt"]

    load = os.getloadavg()
    lines = [
        "# Batch over a folder on Ray: cost per image (`python bench/batch.py`)",
        "",
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; {platform.processor() or platform.machine()}, "
        f"{cpus} CPU cores, no GPU; Python {platform.python_version()}, Ray 2.60.0, ComfyUI at {COMFYUI}; "
        f"load average at the end {load[0]:.1f} (other jobs share the machine).",
        f"Checkpoint: {checkpoint.name} ({'the small random-weight test checkpoint' if not args.ckpt else 'given'}); "
        f"{args.images} images of 96x96 / 96x72 px; example workflow, strength 0.6, {args.steps} steps "
        f"({round(0.6 * args.steps)} run), euler/normal, cfg 7.",
        "Overhead rows: one thread per server (direct and `--threads 1`). Throughput rows: the default budget, "
        f"cores // workers ({cpus} threads for 1 worker, {max(1, cpus // 2)} each for 2). Steady state: server start "
        "and each server's first image (model load) excluded; medians.",
        "",
        "| path | per image, call to call (s) | prompt on its server (s) | Ray path overhead per image | "
        "images/min steady | images/min end to end |",
        "|---|---|---|---|---|---|",
        f"| direct: prompts posted to one server, before / after the Ray runs | {d_before:.3f} / {d_after:.3f} | "
        f"{d_before:.3f} / {d_after:.3f} | — | {60 / d:.1f} | — |",
        f"| scripts/batch.py, 1 worker, `--threads 1` | {one['interval']:.3f} | {one['prompt']:.3f} | "
        f"{one['overhead']:+.3f} s ({pct:+.1f} %; mean {one['overhead_mean']:+.3f} s; in the worker "
        f"{one['in_worker']:.3f} s; delivery to the driver {one['delivery']:.3f} s, overlapped) | "
        f"{one['steady_per_min']:.1f} | {one['end_to_end_per_min']:.1f} |",
        f"| scripts/batch.py, 1 worker ({cpus} threads) | {one_default['interval']:.3f} | {one_default['prompt']:.3f} | "
        f"— | {one_default['steady_per_min']:.1f} | {one_default['end_to_end_per_min']:.1f} |",
        f"| scripts/batch.py, 2 workers ({max(1, cpus // 2)} thread each) | — | {two['prompt']:.3f} | — | "
        f"{two['steady_per_min']:.1f} | {two['end_to_end_per_min']:.1f} |",
        "",
        "Overhead per image (1 worker): median over images of (start of the next actor call − start of this one) − "
        "(this image's prompt time on its server, POST to finished /history entry, measured in the worker at the same "
        "time): what the Ray path adds to each image in steady state (the actor waiting for its next image from Ray "
        "Data, the input copy, reading the PNG). The delivery of a result to the driver, its atomic write and manifest "
        "line overlap the next image. The direct rows are separate runs minutes apart, so on a shared machine they "
        "also show the drift between runs. The prompt time includes the 0.25 s /history polling of "
        "harness/server.py, in both paths.",
        f"End to end includes Ray's start (a local instance), the servers' start and the model load: 1 worker "
        f"{one_default['wall']:.1f} s, 2 workers {two['wall']:.1f} s for {args.images} images.",
        f"Direct per-image times (s): before {', '.join(f'{t:.2f}' for t in direct_before)}; "
        f"after {', '.join(f'{t:.2f}' for t in direct_after)}.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
