"""Runs a real ComfyUI server (main.py --cpu) on a free loopback port, in a workspace of its own, and runs
prompts on it to their images.

Used by the end-to-end tests, the benchmarks and the commands of scripts/. The workspace (--base-directory) holds
the custom_nodes, models, input and output folders, so a run never touches the user's own ComfyUI folders.
Standard library only; the test checkpoint builder (harness.checkpoint, torch) is imported only when a run needs it.
"""
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from harness.host import REPO, setup_host

PACK_NAME = "sdedit-img2img"
TEST_NODES = pathlib.Path(__file__).resolve().parent / "test_nodes"  # test-only custom nodes, never the pack's


class PromptFailed(RuntimeError):
    """A prompt the server refused (`status`, `response`: its node_errors) or that failed while running (`entry`:
    its /history entry). The message names the node and the error: "LoadImage: Invalid image file: ..."."""

    def __init__(self, message: str, status: int | None = None, response=None, entry: dict | None = None):
        super().__init__(message)
        self.status, self.response, self.entry = status, response, entry

    @property
    def errors(self) -> list[dict]:
        """The execution_error messages of a prompt that failed while running (none for a refused one)."""
        if self.entry is None:
            return []
        return [m[1] for m in self.entry["status"].get("messages", []) if m[0] == "execution_error"]

    @property
    def error(self) -> dict:
        """The first execution_error (node_id, node_type, exception_message, ...)."""
        return self.errors[0]

    @classmethod
    def refused(cls, status: int, response) -> "PromptFailed":
        return cls("ComfyUI refused the prompt: " + _brief(response), status=status, response=response)

    @classmethod
    def failed(cls, entry: dict) -> "PromptFailed":
        messages = [m[1] for m in entry["status"].get("messages", []) if m[0] == "execution_error"]
        text = "; ".join(f"{m.get('node_type')}: {m.get('exception_message', '').strip()}" for m in messages)
        return cls(text or "the prompt failed", entry=entry)


def _brief(response) -> str:
    """One line from /prompt's refusal: the error and each node's errors."""
    if isinstance(response, dict):
        parts = [response.get("error", {}).get("message", "")] if isinstance(response.get("error"), dict) else []
        for node_id, info in (response.get("node_errors") or {}).items():
            for err in info.get("errors", []):
                parts.append(f"node {node_id} ({info.get('class_type')}): {err.get('message')}: {err.get('details')}")
        return "; ".join(p for p in parts if p) or json.dumps(response)[:500]
    return repr(response)[:500]


def prepare_workspace(base: pathlib.Path, checkpoint: pathlib.Path | None, images=(),
                      link_pack: bool = True, models: dict | None = None, test_nodes: bool = False) -> pathlib.Path:
    """Lays out a --base-directory: this pack in custom_nodes (linked, unless `link_pack` is false: the
    caller installs it), `checkpoint` in models (none: the workflow loads no checkpoint), `images` in input.
    `models` maps a path under models/ ("vae/wan_2.1_vae.safetensors": a workflow's file name) to the file
    linked there; `test_nodes` links harness/test_nodes (test-only nodes, e.g. SDEditTestRandomConditioning)
    into custom_nodes."""
    for sub in ("custom_nodes", "models/checkpoints", "input", "output", "user"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    if link_pack:
        _link(base / "custom_nodes" / PACK_NAME, REPO)
    if test_nodes:
        _link(base / "custom_nodes" / "sdedit_test_nodes", TEST_NODES)
    if checkpoint is not None:
        _link(base / "models" / "checkpoints" / checkpoint.name, checkpoint.resolve())
    for name, target in (models or {}).items():
        (base / "models" / name).parent.mkdir(parents=True, exist_ok=True)
        _link(base / "models" / name, pathlib.Path(target).resolve())
    for image in images:
        shutil.copyfile(image, base / "input" / pathlib.Path(image).name)
    return base


def find_checkpoint(ckpt: str | None, comfyui: pathlib.Path, prefix: str = "", quiet: bool = False) -> pathlib.Path:
    """The checkpoint a command-line run uses: `ckpt` as a path or a name in ComfyUI/models/checkpoints, or,
    with no --ckpt, the small random-weight test checkpoint (built once with ComfyUI's own modules, on the CPU, into
    ~/.cache/comfyui-sdedit or $SDEDIT_CACHE); `quiet`: the caller has said so already."""
    checkpoints = comfyui / "models" / "checkpoints"
    if ckpt is None:
        from harness import checkpoint
        if not (pathlib.Path(checkpoint.default_cache_dir()) / checkpoint.FILE_NAME).is_file():
            setup_host(comfyui)  # the builder uses ComfyUI's own modules, on the CPU
        path = checkpoint.ensure_checkpoint()
        if not quiet:
            print(f"{prefix}No --ckpt given: using the small random-weight test checkpoint, so the output will be "
                  f"noise.\n{prefix}For real results pass an SD1.5 checkpoint: --ckpt /path/to/model.safetensors, "
                  f"or the name of a file in {checkpoints}.", file=sys.stderr)
        return path
    for candidate in (pathlib.Path(ckpt).expanduser(), checkpoints / ckpt):
        if candidate.is_file():
            return candidate.resolve()
    raise SystemExit(f"--ckpt {ckpt!r}: no such file, and no such name in {checkpoints}. "
                     "Give the path of an SD1.5 .safetensors/.ckpt file or a file name in that folder.")


def _link(link: pathlib.Path, target: pathlib.Path) -> None:
    if link.is_symlink():
        link.unlink()
    link.symlink_to(target, target_is_directory=target.is_dir())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel kills it when the thread that started it ends (Linux), so a
    server never outlives a worker process that is killed without a chance to clean up (e.g. by Ray)."""
    import ctypes
    import signal
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


class ComfyServer:
    def __init__(self, comfyui: pathlib.Path, base: pathlib.Path, python: str = sys.executable,
                 extra_args=("--preview-method", "latent2rgb"), env: dict | None = None, cpu: bool = True,
                 die_with_parent: bool = False):
        self.comfyui, self.base, self.python = pathlib.Path(comfyui), pathlib.Path(base), python
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.base / "comfyui.log"
        self.extra_args = list(extra_args)
        self.env = None if env is None else {**os.environ, **env}  # e.g. TMPDIR, to see the temp files it makes
        self.cpu, self.die_with_parent = cpu, die_with_parent and sys.platform.startswith("linux")
        self.process = None

    def __enter__(self):
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [self.python, "main.py", *(["--cpu"] if self.cpu else []), "--listen", "127.0.0.1", "--port", str(self.port),
             "--base-directory", str(self.base), *self.extra_args],
            cwd=self.comfyui, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env,
            preexec_fn=_die_with_parent if self.die_with_parent else None)
        log.close()
        self._wait_ready(timeout=300)
        return self

    def __exit__(self, *exc):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"ComfyUI exited during start-up; its log:\n{self.log[-4000:]}")
            try:
                self.get("/system_stats")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        raise TimeoutError(f"ComfyUI did not answer within {timeout} s; its log:\n{self.log[-4000:]}")

    def request(self, method: str, path: str, body=None):
        """(HTTP status, parsed JSON or raw bytes)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw

    def get(self, path: str):
        status, payload = self.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status}: {payload!r}")
        return payload

    def queue(self, prompt: dict):
        """POSTs an API-format workflow to /prompt: (HTTP status, response)."""
        return self.request("POST", "/prompt", {"prompt": prompt})

    def submit(self, prompt: dict) -> str:
        """Queues a prompt; its id. Raises PromptFailed where the server refuses it (validation, HTTP 400)."""
        status, response = self.queue(prompt)
        if status != 200:
            raise PromptFailed.refused(status, response)
        return response["prompt_id"]

    def run(self, prompt: dict, timeout: float = 600, forget: bool = False) -> dict:
        """Runs a prompt to its end: its /history entry (`forget`: deleted from the server's history, which
        otherwise grows with every prompt). Raises PromptFailed where it is refused or fails while running."""
        prompt_id = self.submit(prompt)
        entry = self.wait(prompt_id, timeout)
        if forget:
            self.request("POST", "/history", {"delete": [prompt_id]})
        if entry["status"]["status_str"] != "success":
            raise PromptFailed.failed(entry)
        return entry

    def run_images(self, prompt: dict, timeout: float = 600, forget: bool = False) -> list[pathlib.Path]:
        """Runs a prompt to its end: the files its SaveImage nodes wrote. Raises PromptFailed as run() does."""
        return self.saved_images(self.run(prompt, timeout, forget))

    def wait(self, prompt_id: str, timeout: float = 600) -> dict:
        """The /history entry of a finished prompt (completed or failed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            history = self.get(f"/history/{prompt_id}")
            entry = history.get(prompt_id)
            if entry and entry.get("status", {}).get("completed") is not None and (
                    entry["status"]["status_str"] in ("success", "error")):
                return entry
            if not self.alive():
                raise RuntimeError(f"ComfyUI died while running the prompt; its log:\n{self.log[-4000:]}")
            time.sleep(0.25)
        raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout} s")

    def saved_images(self, entry: dict) -> list[pathlib.Path]:
        """Files that SaveImage nodes wrote for a /history entry."""
        out = []
        for node_output in entry.get("outputs", {}).values():
            for image in node_output.get("images", []):
                if image.get("type") == "output":
                    out.append(self.base / "output" / image.get("subfolder", "") / image["filename"])
        return out
