"""The batch's Ray pipeline: Ray Data streams the images (read on the driver's node) to a pool of actors, each
owning one ComfyUI server (harness.server) for all its images; the driver writes every result into the output
folder, so the input and output folders are only ever touched by the driver."""
import json
import logging
import os
import pathlib
import shutil
import signal
import socket
import sys
import tempfile
import time
import uuid

from harness import ComfyServer, PromptFailed, prepare_workspace
from sdedit_cli.output_folder import OutputFolder
from sdedit_cli.template import Template

SERVER_RESTARTS = 2  # per image: a server that dies mid-prompt is restarted and the image retried this often
SCRIPTS = pathlib.Path(__file__).resolve().parents[1]
REPO = SCRIPTS.parent


def say(text: str) -> None:
    print(f"[batch] {text}", file=sys.stderr, flush=True)


class Worker:
    """Owns one ComfyUI server for its lifetime and runs one image per call. Never raises for an image that
    fails on its own: the row says status "error" and why, and the job goes on."""

    def __init__(self, comfyui: str, checkpoint: str | None, workdir: str, run_id: str, template: Template,
                 threads: int | None, use_gpu: bool):
        from concurrent.futures import ThreadPoolExecutor
        # The server is started from this one long-lived thread: the kernel kills a server whose starting thread
        # ends (die_with_parent), and a pool thread of Ray's could end while the actor lives on.
        self.launcher = ThreadPoolExecutor(1)
        self.comfyui, self.use_gpu, self.template = pathlib.Path(comfyui), use_gpu, template
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
        prompt = self.template.prompt_for(local, int(row["seed"]))
        result = {"name": name, "status": "error", "png": b"", "error": "", "worker": self.worker_id,
                  "server_restarts": 0, "call_started": time.time()}
        self.prompt_seconds = 0.0
        (self.base / "input" / local).write_bytes(row["data"])
        try:
            restart = not self.server.alive()  # it died between images
            for attempt in range(SERVER_RESTARTS + 1):
                if restart:
                    self._start()
                    result["server_restarts"] += 1
                try:
                    result.update(self._run(prompt))
                    break
                except Exception as error:  # the server's state decides: retry or report
                    if self._still_serving():
                        result["error"] = f"{type(error).__name__}: {error}"
                        break
                    restart = True
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

    def _still_serving(self) -> bool:
        """After a prompt failed: True where the server answers (and is told to drop the prompt, e.g. after a
        timeout, so the next image does not wait); False where it died. A killed server can look alive for a
        moment while the kernel tears it down, so a refused connection counts as dead."""
        if not self.server.alive():
            return False
        try:
            self.server.request("POST", "/interrupt")
            return True
        except OSError:  # urllib's URLError included
            return False

    def _run(self, prompt: dict) -> dict:
        posted = time.monotonic()
        try:
            # The server keeps every prompt's history unless told to forget it; over thousands of images that grows.
            files = self.server.run_images(prompt, timeout=3600, forget=True)
        except PromptFailed as failure:
            return {"status": "error", "error": str(failure)}
        finally:
            self.prompt_seconds = time.monotonic() - posted  # what posting to the server directly costs (bench)
        try:
            if len(files) != 1:
                return {"status": "error", "error": f"SaveImage wrote {len(files)} pictures for one input; the batch "
                                                    "writes one output per input (use a batch size of 1)"}
            return {"status": "ok", "png": files[0].read_bytes(), "error": ""}
        finally:
            for path in files:
                path.unlink(missing_ok=True)


def _read_image(row: dict) -> dict:
    """A Ray Data task on the driver's node: the input folder is read there, so workers need no shared storage."""
    row["data"] = pathlib.Path(row["path"]).read_bytes()
    return row


def execute(args, comfyui: pathlib.Path, folder: OutputFolder, checkpoint, template: Template, current: str,
            todo: list[dict], summary: dict, on_result=None) -> dict:
    """Runs `todo` on Ray, writing each result into `folder` as it arrives; fills in and returns `summary`."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a batch job does not report usage unless asked to
    try:
        import ray
    except ImportError:
        raise SystemExit("Ray is not installed in this environment: pip install 'ray[data]==2.60.0' "
                         "(scripts/batch.sh does this on first use).")
    by_name = {t["name"]: t for t in todo}
    folder.open_manifest()
    workdir = args.workdir.resolve() if args.workdir else pathlib.Path(tempfile.mkdtemp(prefix="sdedit-batch-"))
    workdir.mkdir(parents=True, exist_ok=True)
    run_id = uuid.uuid4().hex[:8]
    started = time.monotonic()
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt)  # `kill` stops as cleanly as Ctrl-C
    try:
        # The workers import sdedit_cli and harness from here (same path on every node of a cluster).
        path = [str(SCRIPTS), str(REPO), os.environ.get("PYTHONPATH")]
        runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, path)),
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
                                               "template": template, "threads": threads, "use_gpu": bool(gpus)},
                        **actor_resources))  # Ray Data restarts a dead actor and retries its images by default
        seen = set()
        for row in dataset.iter_rows():
            if row["name"] in seen:
                continue  # a retried task's duplicate: every image is written once
            seen.add(row["name"])
            summary["written" if folder.write(row, by_name[row["name"]], current) else "failed"] += 1
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
        _stop(ray, args, workdir)
    summary["seconds"] = round(time.monotonic() - started, 1)
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
