"""Batch img2img: one exported API workflow over a folder of images, on Ray, resumable.

    python scripts/batch.py --comfyui PATH --workflow API.json --input DIR --output DIR [--workers N]
                            [--address RAY_ADDRESS] [--ckpt PATH_OR_NAME] [--strength S] [--seed N] [--prompt TEXT]

Ray Data streams the images (read on the driver's node) to an actor pool; each actor owns one ComfyUI server
(scripts/comfy_server.py), started once and kept for all its images, so the model loads once per worker.
The driver writes every output (atomically) and a manifest line per image into --output, so the input and
output folders are only ever touched by the driver: a cluster needs no shared storage.
A re-run with the same arguments skips what is done; different settings in the same --output are refused.
"""
import argparse
import copy
import datetime
import fcntl
import hashlib
import json
import os
import pathlib
import shutil
import signal
import socket
import sys
import tempfile
import time
import uuid

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from comfy_server import ComfyServer, find_checkpoint, prepare_workspace  # noqa: E402  (after the sys.path line)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
MANIFEST = "manifest.jsonl"
SETTINGS = "batch_settings.json"
LOCK = ".sdedit-batch.lock"
TMP_PREFIX, TMP_SUFFIX = ".sdedit-batch-", ".tmp"
# Nodes whose seed the batch sets per image, and the name of that input.
SEED_INPUTS = {"SDEditAddNoise": "seed", "SDEditStrengthSweep": "seed", "KSampler": "seed",
               "KSamplerAdvanced": "noise_seed", "RandomNoise": "noise_seed"}
SERVER_RESTARTS = 2  # per image: a server that dies mid-prompt is restarted and the image retried this often


class WorkflowError(ValueError):
    """The workflow does not fit the batch (or the flags given); the message says what it needs."""


class SettingsChanged(RuntimeError):
    """--output holds results made with other settings."""


# --- the workflow ----------------------------------------------------------------------------------

def plan_workflow(workflow: dict, *, ckpt_name: str | None, strength: float | None, prompt: str | None,
                  seed_given: bool) -> tuple[dict, str, list[str]]:
    """The workflow patched with the batch's settings, with placeholders where each image differs:
    (template, LoadImage node id, ids of the nodes whose seed is set per image). Raises WorkflowError."""
    nodes = {k: v for k, v in workflow.items() if isinstance(v, dict) and "class_type" in v}
    if not nodes or len(nodes) != len(workflow):
        raise WorkflowError("this is not an API-format workflow (a JSON object of nodes with class_type and "
                            "inputs). In ComfyUI: Workflow -> Export (API).")

    def of(class_type):
        return sorted((k for k, n in nodes.items() if n["class_type"] == class_type), key=_node_order)

    needs = []
    loads, saves = of("LoadImage"), of("SaveImage")
    if len(loads) != 1:
        needs.append(f"exactly one LoadImage node, which the batch feeds each image (it has {len(loads)}"
                     + (f": nodes {', '.join(loads)})" if loads else ")"))
    if len(saves) != 1:
        needs.append(f"exactly one SaveImage node, whose picture becomes the output (it has {len(saves)}"
                     + (f": nodes {', '.join(saves)})" if saves else ")"))
    template = copy.deepcopy(nodes)
    loaders = of("CheckpointLoaderSimple")
    if ckpt_name is not None:
        if not loaders:
            needs.append("a CheckpointLoaderSimple (Load Checkpoint) node for --ckpt (it has none)")
        for k in loaders:
            template[k]["inputs"]["ckpt_name"] = ckpt_name
    if strength is not None:
        add_noise = of("SDEditAddNoise")
        if not add_noise:
            needs.append("an SDEditAddNoise (SDEdit 2 · Add Noise) node for --strength (it has none; set the "
                         "strength, e.g. KSampler's denoise, in the workflow itself and drop --strength)")
        for k in add_noise:
            template[k]["inputs"]["strength"] = strength
    if prompt is not None:
        positives = sorted({n["inputs"]["positive"][0] for n in nodes.values()
                            if isinstance(n.get("inputs", {}).get("positive"), list)}, key=_node_order)
        encoders = [k for k in positives if nodes.get(k, {}).get("class_type") == "CLIPTextEncode"]
        if not encoders:
            needs.append("a CLIPTextEncode node wired to a sampler's `positive` input for --prompt (it has none)")
        for k in encoders:
            template[k]["inputs"]["text"] = prompt
    seed_ids = [k for k in sorted(nodes, key=_node_order) if nodes[k]["class_type"] in SEED_INPUTS
                and not isinstance(nodes[k]["inputs"].get(SEED_INPUTS[nodes[k]["class_type"]]), list)]
    if seed_given and not seed_ids:
        needs.append("a node with a seed (" + ", ".join(SEED_INPUTS) + ") for --seed (it has none)")
    if needs:
        raise WorkflowError("the workflow does not fit the batch. It needs " + "; ".join(needs) + ".")
    template[loads[0]]["inputs"]["image"] = "<each input image>"
    for k in seed_ids:
        template[k]["inputs"][SEED_INPUTS[nodes[k]["class_type"]]] = "<per-image seed>"
    return template, loads[0], seed_ids


def _node_order(node_id: str):
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)


def image_seed(base_seed: int, name: str) -> int:
    """The seed of one image: from the --seed and the image's path in the input folder only, so a result
    never depends on the order the images run in or on the worker that runs it."""
    return int.from_bytes(hashlib.sha256(f"{base_seed}\0{name}".encode()).digest()[:4], "big")


def prompt_for(template: dict, load_id: str, seed_ids: list[str], image_name: str, seed: int) -> dict:
    """The API prompt for one image; several seed nodes (e.g. repeats) get seed, seed + 1, ..."""
    prompt = copy.deepcopy(template)
    prompt[load_id]["inputs"]["image"] = image_name
    for i, k in enumerate(seed_ids):
        prompt[k]["inputs"][SEED_INPUTS[prompt[k]["class_type"]]] = seed + i
    return prompt


def workflow_hash(template: dict, settings: dict) -> str:
    """Covers the patched workflow and every parameter that changes a result."""
    blob = json.dumps({"workflow": template, "settings": settings}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --- the folder, the manifest, the outputs ---------------------------------------------------------

def list_inputs(input_dir: pathlib.Path) -> list[tuple[str, pathlib.Path]]:
    """(name relative to the folder, path) of every image under it, hidden files and folders left out."""
    found = []
    for path in sorted(input_dir.rglob("*")):
        rel = path.relative_to(input_dir)
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not any(p.startswith(".") for p in rel.parts):
            found.append((rel.as_posix(), path))
    return found


def default_targets(names: list[str]) -> dict[str, str]:
    """Output name per input: a.jpg -> a.png; where two inputs would share one (a.jpg, a.png), both keep their
    extension (a.jpg.png, a.png.png)."""
    plain = {n: str(pathlib.PurePosixPath(n).with_suffix(".png")) for n in names}
    counts = {}
    for target in plain.values():
        counts[target] = counts.get(target, 0) + 1
    return {n: (t if counts[t] == 1 else n + ".png") for n, t in plain.items()}


def read_manifest(path: pathlib.Path) -> list[dict]:
    records = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue  # a line cut off by a crash of the machine; the image is simply redone
    return records


def free_name(output_dir: pathlib.Path, target: str, taken: set[str]) -> str:
    """`target`, or target-1.png, -2, ... : the first name that is neither a file on disk nor claimed."""
    pure = pathlib.PurePosixPath(target)
    candidate, n = target, 0
    while candidate in taken or (output_dir / candidate).exists() or (output_dir / candidate).is_symlink():
        n += 1
        candidate = str(pure.with_name(f"{pure.stem}-{n}{pure.suffix}"))
    return candidate


class Manifest:
    """Appends one complete JSON line per image, flushed and synced before the output is put in place."""

    def __init__(self, path: pathlib.Path):
        self.path = path
        self.file = open(path, "a", encoding="utf-8")

    def append(self, record: dict) -> None:
        self.file.write(json.dumps(record, sort_keys=True) + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()


# --- the worker (a Ray actor) ------------------------------------------------------------------------

class Worker:
    """Owns one ComfyUI server for its lifetime and runs one image per call. Never raises for an image that
    fails on its own: the row says status "error" and why, and the job goes on."""

    def __init__(self, comfyui: str, checkpoint: str | None, workdir: str, run_id: str, template: dict,
                 load_id: str, seed_ids: list, threads: int | None, use_gpu: bool):
        from concurrent.futures import ThreadPoolExecutor
        # The server is started from this one long-lived thread: the kernel kills a server whose starting thread
        # ends (die_with_parent), and a pool thread of Ray's could end while the actor lives on.
        self.launcher = ThreadPoolExecutor(1)
        self.comfyui, self.use_gpu = pathlib.Path(comfyui), use_gpu
        self.template, self.load_id, self.seed_ids = template, load_id, seed_ids
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.base = prepare_workspace(pathlib.Path(workdir) / f"{run_id}-{os.getpid()}",
                                      pathlib.Path(checkpoint) if checkpoint else None)
        self.extra_args = ["--preview-method", "none"]  # no one watches previews in a batch
        models = self.comfyui / "models"
        if models.is_dir():
            # The workspace holds only the checkpoint; the install's other model folders (LoRAs, VAEs, upscalers, ...)
            # are offered too, read-only, so workflows that load them work as they do in the user's ComfyUI.
            folders = sorted(d.name for d in models.iterdir() if d.is_dir())
            config = self.base / "extra_model_paths.yaml"
            config.write_text(f"comfyui_install:\n    base_path: {json.dumps(str(self.comfyui))}\n"
                              + "".join(f"    {json.dumps(name)}: {json.dumps('models/' + name)}\n" for name in folders))
            self.extra_args += ["--extra-model-paths-config", str(config)]
        # CPU: a thread budget per server (cpus // workers), so the servers do not fight over the cores.
        self.env = {} if threads is None else {k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
        self.server = None
        self.starts = 0
        self._start()

    def _start(self) -> None:
        if self.server is not None:
            self.server.__exit__(None, None, None)
        self.server = ComfyServer(self.comfyui, self.base, extra_args=self.extra_args, env=self.env, cpu=not self.use_gpu,
                                  die_with_parent=True)
        self.launcher.submit(self.server.__enter__).result()
        self.starts += 1

    def __call__(self, row: dict) -> dict:
        started = time.monotonic()
        name = row["name"]
        # A name of the worker's own for the input copy: the user's file name may hold anything.
        local = f"{uuid.uuid4().hex}{pathlib.PurePosixPath(name).suffix.lower()}"
        prompt = prompt_for(self.template, self.load_id, self.seed_ids, local, int(row["seed"]))
        result = {"name": name, "status": "error", "png": b"", "error": "", "worker": self.worker_id,
                  "server_restarts": 0, "call_started": time.time()}
        self.prompt_seconds = 0.0
        (self.base / "input" / local).write_bytes(row["data"])
        try:
            for attempt in range(SERVER_RESTARTS + 1):
                if not self.server.alive():
                    self._start()
                    result["server_restarts"] += 1
                try:
                    result.update(self._run(prompt))
                    break
                except Exception as error:  # the server's state decides: retry or report
                    if self.server.alive():
                        result["error"] = f"{type(error).__name__}: {error}"
                        self.server.request("POST", "/interrupt")  # e.g. a timeout: the next image must not wait
                        break
                    result["error"] = f"the ComfyUI server died while running it ({attempt + 1} times)"
                    print(f"[batch worker {self.worker_id}] server died during {name}; restarting it",
                          file=sys.stderr, flush=True)
        finally:
            (self.base / "input" / local).unlink(missing_ok=True)
        result["seconds"] = round(time.monotonic() - started, 3)
        result["prompt_seconds"] = round(self.prompt_seconds, 3)
        result["call_ended"] = time.time()
        result["error"] = result["error"].replace(str(self.base / "input" / local), name)  # the user's name for it
        return result

    def _run(self, prompt: dict) -> dict:
        posted = time.monotonic()
        status, response = self.server.queue(prompt)
        if status != 200:
            return {"status": "error", "error": "ComfyUI refused the prompt: " + _brief(response)}
        entry = self.server.wait(response["prompt_id"], timeout=3600)
        self.prompt_seconds = time.monotonic() - posted  # what posting to the server directly costs (bench)
        # The server keeps every prompt's history; over thousands of images that only grows.
        self.server.request("POST", "/history", {"delete": [response["prompt_id"]]})
        if entry["status"]["status_str"] != "success":
            messages = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_error"]
            text = "; ".join(f"{m.get('node_type')}: {m.get('exception_message', '').strip()}" for m in messages)
            return {"status": "error", "error": text or "the prompt failed"}
        files = self.server.saved_images(entry)
        try:
            if len(files) != 1:
                return {"status": "error", "error": f"SaveImage wrote {len(files)} pictures for one input; the batch "
                                                    "writes one output per input (use a batch size of 1)"}
            return {"status": "ok", "png": files[0].read_bytes(), "error": ""}
        finally:
            for path in files:
                path.unlink(missing_ok=True)


def _brief(response) -> str:
    if isinstance(response, dict):
        parts = [response.get("error", {}).get("message", "")] if isinstance(response.get("error"), dict) else []
        for node_id, info in (response.get("node_errors") or {}).items():
            for err in info.get("errors", []):
                parts.append(f"node {node_id} ({info.get('class_type')}): {err.get('message')}: {err.get('details')}")
        return "; ".join(p for p in parts if p) or json.dumps(response)[:500]
    return repr(response)[:500]


def _read_image(row: dict) -> dict:
    """A Ray Data task on the driver's node: the input folder is read there, so workers need no shared storage."""
    row["data"] = pathlib.Path(row["path"]).read_bytes()
    return row


# --- the driver --------------------------------------------------------------------------------------

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


def say(text: str) -> None:
    print(f"[batch] {text}", file=sys.stderr, flush=True)


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
    # The workflow is checked before anything is started, with a placeholder for the checkpoint's name.
    has_loader = any(isinstance(n, dict) and n.get("class_type") == "CheckpointLoaderSimple" for n in workflow.values())
    try:
        plan_workflow(workflow, ckpt_name=args.ckpt, strength=args.strength, prompt=args.prompt,
                      seed_given=args.seed is not None)
    except WorkflowError as error:
        raise SystemExit(f"--workflow {args.workflow}: {error}")
    checkpoint = find_checkpoint(args.ckpt, comfyui, prefix="[batch] ") if (has_loader or args.ckpt) else None
    template, load_id, seed_ids = plan_workflow(
        workflow, ckpt_name=checkpoint.name if checkpoint else None, strength=args.strength, prompt=args.prompt,
        seed_given=args.seed is not None)
    base_seed = args.seed if args.seed is not None else 0
    settings = {"workflow_file": str(args.workflow.resolve()), "ckpt": checkpoint.name if checkpoint else None,
                "ckpt_bytes": checkpoint.stat().st_size if checkpoint else None, "strength": args.strength,
                "prompt": args.prompt, "seed": base_seed}
    current = workflow_hash(template, {k: v for k, v in settings.items() if k != "workflow_file"})

    output_dir.mkdir(parents=True, exist_ok=True)
    lock = open(output_dir / LOCK, "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f"Another batch is writing to {output_dir}; wait for it or choose another --output.")
    try:
        return _run_locked(args, comfyui, input_dir, output_dir, checkpoint, template, load_id, seed_ids,
                           base_seed, settings, current, on_result)
    finally:
        lock.close()


def _settings_diff(old: dict, new: dict) -> list[str]:
    def shown(value):
        return "the workflow's" if value is None else repr(value)
    changed = [f"{k}: {shown(old.get(k))} -> {shown(new.get(k))}" for k in ("workflow_file", "ckpt", "ckpt_bytes", "strength",
                                                                  "prompt", "seed") if old.get(k) != new.get(k)]
    old_wf, new_wf = old.get("workflow") or {}, new.get("workflow") or {}
    nodes = sorted({k for k in set(old_wf) | set(new_wf) if old_wf.get(k) != new_wf.get(k)}, key=_node_order)
    if nodes:
        changed.append("workflow nodes " + ", ".join(nodes))
    return changed


def _run_locked(args, comfyui, input_dir, output_dir, checkpoint, template, load_id, seed_ids, base_seed,
                settings, current, on_result) -> dict:
    manifest_path = output_dir / MANIFEST
    records = read_manifest(manifest_path)
    latest = {}
    for record in records:
        latest[record["name"]] = record
    ours = {r["output_name"] for r in records if r.get("output_name")}  # files some run of the batch wrote
    other = sorted({r["workflow_hash"] for r in latest.values()} - {current})
    settings_path = output_dir / SETTINGS
    new_settings = {**settings, "workflow_hash": current, "workflow": template}
    if other and not args.redo:
        old = json.loads(settings_path.read_text()) if settings_path.is_file() else {}
        what = "; ".join(_settings_diff(old, new_settings)) or f"workflow hash {', '.join(other)} -> {current}"
        n = sum(r["workflow_hash"] != current for r in latest.values())
        raise SettingsChanged(
            f"{output_dir} holds {n} result(s) made with other settings ({what}). Not mixing them: run with another "
            "--output, or add --redo to redo those images with the new settings (their outputs are replaced).")
    # Stale temporary files of an interrupted run: only the batch's own names are removed.
    for stale in output_dir.glob(f"{TMP_PREFIX}*{TMP_SUFFIX}"):
        stale.unlink(missing_ok=True)
    settings_tmp = output_dir / f"{TMP_PREFIX}settings{TMP_SUFFIX}"
    settings_tmp.write_text(json.dumps(new_settings, indent=1, sort_keys=True))
    os.replace(settings_tmp, settings_path)

    inputs = list_inputs(input_dir)
    targets = default_targets([name for name, _ in inputs])
    todo, done_before, failed_before, claimed = [], 0, 0, set()
    for name, path in inputs:
        record = latest.get(name)
        same = record is not None and record["workflow_hash"] == current
        if same and record["status"] == "ok" and (output_dir / record["output_name"]).is_file():
            done_before += 1
            claimed.add(record["output_name"])
            continue
        if same and record["status"] == "error" and not args.retry_failed:
            failed_before += 1
            continue
        if record is not None and record.get("output_name") and not (output_dir / record["output_name"]).exists():
            target, replace = record["output_name"], False  # ours, gone (or never put in place): written again
        elif record is not None and record.get("output_name"):
            target, replace = record["output_name"], True  # ours, made with other settings (--redo): replaced
        else:
            target, replace = free_name(output_dir, targets[name], claimed | ours), False
        claimed.add(target)
        todo.append({"name": name, "path": str(path), "seed": image_seed(base_seed, name), "target": target,
                     "ours": replace})
    say(f"{len(inputs)} images in {input_dir}: {done_before} done earlier, {failed_before} failed earlier "
        f"(--retry-failed runs them again), {len(todo)} to run; workflow hash {current}")
    summary = {"total": len(inputs), "done_before": done_before, "failed_before": failed_before, "written": 0,
               "failed": 0, "left": len(todo), "seconds": 0.0, "interrupted": False, "workflow_hash": current,
               "manifest": str(manifest_path)}
    if not todo:
        say("nothing to do.")
        return summary
    return _execute(args, comfyui, output_dir, checkpoint, template, load_id, seed_ids, current, todo, summary,
                    on_result)


def _execute(args, comfyui, output_dir, checkpoint, template, load_id, seed_ids, current, todo, summary,
             on_result) -> dict:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a batch job does not report usage unless asked to
    try:
        import ray
    except ImportError:
        raise SystemExit("Ray is not installed in this environment: pip install 'ray[data]==2.60.0' "
                         "(scripts/batch.sh does this on first use).")
    import logging
    if __name__ != "__main__":
        # Imported (e.g. by bench/batch.py) under a name the workers cannot import: ship the Worker class by value.
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    by_name = {t["name"]: t for t in todo}
    temps = set()
    manifest = Manifest(output_dir / MANIFEST)
    workdir = args.workdir.resolve() if args.workdir else pathlib.Path(tempfile.mkdtemp(prefix="sdedit-batch-"))
    workdir.mkdir(parents=True, exist_ok=True)
    run_id = uuid.uuid4().hex[:8]
    started = time.monotonic()
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt)  # `kill` stops as cleanly as Ctrl-C
    try:
        # The workers import this file and comfy_server from here (same path on every node of a cluster).
        runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
                                    "RAY_USAGE_STATS_ENABLED": os.environ["RAY_USAGE_STATS_ENABLED"]}}
        if args.address:
            ray.init(address=args.address, runtime_env=runtime_env, logging_level=logging.WARNING)
        else:
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, runtime_env=runtime_env,
                     logging_level=logging.WARNING)
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        resources = ray.cluster_resources()
        gpus = 0 if args.cpu else int(resources.get("GPU", 0))
        cpus = max(1, int(resources.get("CPU", os.cpu_count() or 1)))
        # The thread budget follows --workers even when fewer images are left than workers (fewer actors then), so
        # a resumed image runs with the same threads as in the first run: CPU results can depend on them.
        workers = args.workers or max(1, gpus)
        if gpus and workers > gpus:
            raise SystemExit(f"--workers {workers}: the Ray cluster has {gpus} GPU(s), one per worker. Use --workers "
                             f"{gpus} or fewer, or --cpu.")
        if gpus:
            # One actor per GPU: Ray sets CUDA_VISIBLE_DEVICES for it, and its server inherits it.
            actor_resources, threads = {"num_gpus": 1, "num_cpus": 1}, None
        else:
            # The actor itself only drives its server, so it claims a fraction of a CPU (whole CPUs for every actor
            # would leave none for Ray Data's read tasks, and the pipeline would stall); the server gets a thread
            # budget of cpus // workers instead.
            actor_resources = {"num_cpus": min(0.5, cpus / (2 * workers))}
            threads = args.threads or max(1, cpus // workers)
        say(f"{workers} worker(s) on {'GPU' if gpus else 'CPU'}" + (f", {threads} thread(s) each" if threads else "")
            + f"; Ray {'cluster ' + args.address if args.address else 'local instance'}; workspaces in {workdir}")
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.execution_options.preserve_order = False
        # The input folder is read on the driver's node only (Ray labels every node with its id).
        read_args = {"num_cpus": 0.1, "label_selector": {"ray.io/node-id": ray.get_runtime_context().get_node_id()}}
        rows = [{"name": t["name"], "path": t["path"], "seed": t["seed"]} for t in todo]
        dataset = (ray.data.from_items(rows, override_num_blocks=len(rows))  # one block per image: even spreading
                   .map(_read_image, **read_args)
                   .map(Worker, compute=ray.data.ActorPoolStrategy(size=min(workers, len(rows))),
                        fn_constructor_kwargs={"comfyui": str(comfyui), "checkpoint": str(checkpoint) if checkpoint
                                               else None, "workdir": str(workdir), "run_id": run_id,
                                               "template": template, "load_id": load_id, "seed_ids": seed_ids,
                                               "threads": threads, "use_gpu": bool(gpus)},
                        **actor_resources))  # Ray Data restarts a dead actor and retries its images by default
        seen = set()
        for row in dataset.iter_rows():
            if row["name"] in seen:
                continue  # a retried task's duplicate: every image is written once
            seen.add(row["name"])
            _write_result(row, by_name[row["name"]], output_dir, manifest, current, temps, summary)
            if on_result is not None:
                on_result(row, time.monotonic())
            summary["left"] -= 1
            minutes = (time.monotonic() - started) / 60
            say(f"{summary['written']} done, {summary['failed']} failed, {summary['left']} left, "
                f"{(summary['written'] + summary['failed']) / minutes:.1f} images/min"
                + (f"  ({row['name']}: {row['error']})" if row["status"] != "ok" else ""))
    except KeyboardInterrupt:
        summary["interrupted"] = True
    except Exception as error:  # e.g. a worker whose server cannot start: Ray's error carries the server's log
        summary["stopped"] = f"{type(error).__name__}: {str(error)[-3000:]}"
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
        for path in temps:
            path.unlink(missing_ok=True)
        manifest.close()
        _stop(ray, args, workdir)
    summary["seconds"] = round(time.monotonic() - started, 1)
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
    return summary


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _stop(ray, args, workdir: pathlib.Path) -> None:
    """Ends the Ray session (its actors take their servers with them) and, on this machine, makes sure no server
    of this batch is left and the temporary workspaces are gone."""
    try:
        ray.shutdown()
    except Exception as error:  # (stopping must go on)
        say(f"ray.shutdown: {error}")
    try:
        import psutil
        mine = str(workdir)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            left = []
            for process in psutil.process_iter(["cmdline"]):
                cmdline = process.info["cmdline"] or []
                if "main.py" in cmdline and any(part.startswith(mine + os.sep) for part in cmdline):
                    left.append(process)
            if not left:
                break
            for process in left:
                try:
                    process.kill()
                except psutil.Error:
                    pass
            time.sleep(0.2)
    except ImportError:
        pass
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        for workspace in workdir.glob("*-*"):
            if (workspace / "custom_nodes").is_dir():
                shutil.rmtree(workspace, ignore_errors=True)


def _write_result(row, task, output_dir, manifest, current, temps, summary) -> None:
    record = {"name": task["name"], "input": task["path"], "seed": task["seed"], "workflow_hash": current,
              "output": None, "output_name": None, "seconds": row["seconds"], "worker": row["worker"],
              "server_restarts": row["server_restarts"], "status": row["status"], "error": row["error"] or None,
              "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    if row["status"] != "ok":
        manifest.append(record)
        summary["failed"] += 1
        return
    tmp = output_dir / f"{TMP_PREFIX}{uuid.uuid4().hex}{TMP_SUFFIX}"
    temps.add(tmp)
    with open(tmp, "wb") as f:
        f.write(row["png"])
        f.flush()
        os.fsync(f.fileno())
    target, replace = task["target"], task["ours"]
    # Manifest line first, then the file appears in one step: a crash in between leaves a line whose output is
    # missing, and the next run redoes that image.
    while True:
        path = output_dir / target
        if not replace and (path.exists() or path.is_symlink()):
            target = free_name(output_dir, target, set())  # a file appeared there since planning: not ours
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        manifest.append({**record, "output": str(path), "output_name": target})
        if replace:
            os.replace(tmp, path)  # a file an earlier run of the batch wrote for this very image
            break
        try:
            os.link(tmp, path)  # never clobbers: fails if a file appeared there in the meantime
            tmp.unlink()
            break
        except FileExistsError:
            target = free_name(output_dir, target, set())
    temps.discard(tmp)
    summary["written"] += 1


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
