"""scripts/batch.py end to end: a real local Ray instance, two real ComfyUI servers on the CPU, the test checkpoint.

One batch run over a folder (8 good images of mixed sizes, one corrupt file, a user's file already in the output
folder, and one worker's server killed while a prompt runs) is shared by most assertions; its outputs are compared
pixel for pixel with the same workflow posted image by image to one ComfyServer.
"""
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import psutil
import pytest
import ray  # noqa: F401  (the batch needs Ray: without it these tests fail here, they are not skipped)
from conftest import API_WORKFLOW, COMFYUI, REPO
from PIL import Image

BATCH = REPO / "scripts" / "batch.py"
SIZES = [(64, 64), (96, 72), (70, 90), (81, 65), (96, 96), (64, 88), (77, 77), (90, 64)]  # some not multiples of 8
SEED = 7
USER_BYTES = b"the user's own file, not the batch's"


def make_images(folder: pathlib.Path, sizes=SIZES) -> list[str]:
    folder.mkdir(parents=True)
    names = []
    for i, (w, h) in enumerate(sizes):
        rng = np.random.default_rng(i)
        ramp = np.linspace(0, 255, w)[None, :, None] * np.ones((h, 1, 3))
        pixels = (0.6 * ramp + 0.4 * rng.random((h, w, 3)) * 255).astype(np.uint8)
        name = f"img{i}.png" if i % 3 else f"img{i}.jpg"
        Image.fromarray(pixels).save(folder / name, quality=95)
        names.append(name)
    return names


def small_workflow(path: pathlib.Path, steps: int = 4) -> pathlib.Path:
    workflow = json.loads(API_WORKFLOW.read_text())
    workflow["7"]["inputs"]["steps"] = steps  # strength 0.6: 2 model calls per image
    path.write_text(json.dumps(workflow))
    return path


def batch(*args, timeout=600):
    return subprocess.run([sys.executable, str(BATCH), "--comfyui", str(COMFYUI), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def servers_under(workdir: pathlib.Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "main.py" in cmdline and any(str(workdir) in part for part in cmdline):
            found.append(process)
    return found


def manifest(output: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in (output / "manifest.jsonl").read_text().splitlines()]


class ServerKiller(threading.Thread):
    """Finds the batch's ComfyUI servers by their workspace and kills one (SIGKILL) while a prompt is running on it."""

    def __init__(self, workdir: pathlib.Path):
        super().__init__(daemon=True)
        self.workdir, self.killed, self.stop = workdir, None, threading.Event()

    def run(self):
        while not self.stop.is_set() and self.killed is None:
            for process in servers_under(self.workdir):
                cmdline = process.cmdline()
                port = cmdline[cmdline.index("--port") + 1]
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/queue", timeout=2) as response:
                        running = json.loads(response.read())["queue_running"]
                except OSError:
                    continue
                if running:
                    process.kill()
                    self.killed = {"pid": process.pid, "port": port}
                    return
            time.sleep(0.05)


@pytest.fixture(scope="module")
def run(tmp_path_factory, checkpoint_path):
    root = tmp_path_factory.mktemp("batch")
    names = make_images(root / "in")
    (root / "in" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a picture" * 10)
    before = {p.name: p.read_bytes() for p in (root / "in").iterdir()}
    (root / "out").mkdir()
    user_target = pathlib.Path(names[3]).with_suffix(".png").name
    (root / "out" / user_target).write_bytes(USER_BYTES)
    workflow = small_workflow(root / "workflow.json")
    args = ["--workflow", workflow, "--input", root / "in", "--output", root / "out", "--workers", 2,
            "--ckpt", checkpoint_path, "--seed", SEED, "--workdir", root / "work"]
    killer = ServerKiller(root / "work")
    killer.start()
    started = time.monotonic()
    result = batch(*args)
    seconds = time.monotonic() - started
    killer.stop.set()
    print(result.stderr[-4000:])
    return {"root": root, "names": names, "args": args, "result": result, "killed": killer.killed, "before": before,
            "user_target": user_target, "workflow": workflow, "seconds": seconds}


def ok_records(output: pathlib.Path) -> dict[str, list[dict]]:
    found = {}
    for record in manifest(output):
        if record["status"] == "ok":
            found.setdefault(record["name"], []).append(record)
    return found


def test_every_image_is_written_once_though_a_server_was_killed(run):
    out = run["root"] / "out"
    assert run["killed"], "no server of the batch was seen running a prompt"
    assert run["result"].returncode == 1, run["result"].stderr  # 1: an image failed (the corrupt one)
    oks = ok_records(out)
    assert sorted(oks) == sorted(run["names"])
    assert all(len(records) == 1 for records in oks.values()), oks
    restarts = sum(r["server_restarts"] for r in manifest(out))
    assert restarts == 1, "the killed server was not restarted exactly once"
    written = sorted(p.name for p in out.iterdir() if p.suffix == ".png" and p.name != run["user_target"])
    assert written == sorted(r[0]["output_name"] for r in oks.values())
    assert not list(out.glob(".sdedit-batch-*.tmp")), "temporary files left behind"
    assert len({r[0]["worker"] for r in oks.values()}) >= 2, "the images did not spread over the two workers"
    assert not servers_under(run["root"] / "work"), "a ComfyUI server outlived the batch"
    assert {p.name: p.read_bytes() for p in (run["root"] / "in").iterdir()} == run["before"], "an input was modified"


def test_outputs_equal_one_server_run_image_by_image(run, checkpoint_path, tmp_path):
    from harness import ComfyServer, prepare_workspace
    oks = ok_records(run["root"] / "out")
    seeds = {name: records[0]["seed"] for name, records in oks.items()}
    assert len(set(seeds.values())) == len(seeds), "every image should get its own seed"
    workflow = json.loads(run["workflow"].read_text())
    workflow["1"]["inputs"]["ckpt_name"] = checkpoint_path.name
    base = prepare_workspace(tmp_path / "ref", checkpoint_path, [run["root"] / "in" / n for n in run["names"]])
    # The thread budget of a batch worker here (2 cores // 2 workers): CPU results may depend on the thread count.
    with ComfyServer(COMFYUI, base, env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}) as server:
        for name in run["names"]:
            workflow["4"]["inputs"]["image"] = name
            workflow["6"]["inputs"]["seed"] = seeds[name]
            (reference,) = server.run_images(workflow)
            expected = np.asarray(Image.open(reference))
            got = np.asarray(Image.open(run["root"] / "out" / oks[name][0]["output_name"]))
            assert got.shape == expected.shape and np.array_equal(got, expected), name
            w, h = Image.open(run["root"] / "in" / name).size
            assert got.shape[:2] == (h, w), name


def load_batch_module():
    """scripts/batch.py by its path ("batch" alone can name another installed module)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("sdedit_batch", BATCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # Ray's cloudpickle looks it up there
    spec.loader.exec_module(module)
    return module


def test_seeds_depend_only_on_the_seed_and_the_file_name(run):
    batch_module = load_batch_module()
    for name, records in ok_records(run["root"] / "out").items():
        assert records[0]["seed"] == batch_module.image_seed(SEED, name)
    assert batch_module.image_seed(SEED, "a.png") != batch_module.image_seed(SEED + 1, "a.png")


def test_a_corrupt_image_is_recorded_and_the_rest_finish(run):
    records = [r for r in manifest(run["root"] / "out") if r["name"] == "corrupt.png"]
    assert len(records) == 1 and records[0]["status"] == "error" and records[0]["output"] is None
    assert records[0]["error"].startswith("LoadImage: "), records[0]
    assert len(ok_records(run["root"] / "out")) == len(run["names"])
    assert "1 failed" in run["result"].stderr


def test_a_users_file_is_never_overwritten(run):
    out = run["root"] / "out"
    assert (out / run["user_target"]).read_bytes() == USER_BYTES
    name = run["names"][3]
    (record,) = ok_records(out)[name]
    assert record["output_name"] != run["user_target"] and (out / record["output_name"]).is_file()


def test_manifest_lines_say_what_happened(run):
    for record in manifest(run["root"] / "out"):
        assert {"input", "seed", "workflow_hash", "output", "seconds", "worker", "status", "error"} <= set(record)
        assert pathlib.Path(record["input"]).parent == run["root"] / "in"
        assert record["seconds"] > 0
    assert len({r["workflow_hash"] for r in manifest(run["root"] / "out")}) == 1
    assert "images/min" in run["result"].stderr and "finished:" in run["result"].stderr


def test_a_second_run_skips_what_is_done_and_redoes_what_is_half_done(run):
    out = run["root"] / "out"
    lines = (out / "manifest.jsonl").read_text()
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    again = batch(*run["args"])
    assert "8 done earlier, 1 failed earlier" in again.stderr and "nothing to do" in again.stderr, again.stderr
    assert (out / "manifest.jsonl").read_text() == lines
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")} == stamps

    # Half done: an output gone (e.g. a crash between the manifest line and the rename) and a stale temporary file.
    name = run["names"][5]
    target = out / ok_records(out)[name][0]["output_name"]
    before = np.asarray(Image.open(target))
    target.unlink()
    (out / ".sdedit-batch-stale.tmp").write_bytes(b"half written")
    redo = batch(*run["args"])
    assert "7 done earlier, 1 failed earlier" in redo.stderr and "1 to run" in redo.stderr, redo.stderr
    assert not (out / ".sdedit-batch-stale.tmp").exists()
    assert np.array_equal(np.asarray(Image.open(target)), before), "the redone image differs"
    assert [r["name"] for r in manifest(out)[len(lines.splitlines()):]] == [name]


def test_a_changed_parameter_is_noticed_and_not_mixed(run):
    out = run["root"] / "out"
    lines = (out / "manifest.jsonl").read_text()
    changed = batch(*run["args"], "--strength", "0.5")
    assert changed.returncode == 2, changed.stderr
    assert "strength" in changed.stderr and "--redo" in changed.stderr and "--output" in changed.stderr
    assert (out / "manifest.jsonl").read_text() == lines
    prompt = batch(*run["args"], "--prompt", "a lighthouse")
    assert prompt.returncode == 2 and "prompt" in prompt.stderr, prompt.stderr


def test_redo_replaces_the_batchs_own_outputs_with_the_new_settings(run):
    """Runs after the tests above (same module-scoped run): --redo is the explicit way to change settings in place."""
    out = run["root"] / "out"
    old = {name: records[0] for name, records in ok_records(out).items()}
    old_pixels = {name: np.asarray(Image.open(out / r["output_name"])) for name, r in old.items()}
    redo = batch(*run["args"], "--strength", "0.3", "--redo")
    assert redo.returncode == 1, redo.stderr  # the corrupt file is tried again with the new settings, and fails again
    assert "9 to run" in redo.stderr, redo.stderr
    latest = {}
    for record in manifest(out):
        latest[record["name"]] = record
    assert len({r["workflow_hash"] for r in latest.values()}) == 1
    assert latest["corrupt.png"]["status"] == "error"
    for name, record in old.items():
        assert latest[name]["status"] == "ok" and latest[name]["workflow_hash"] != record["workflow_hash"]
        assert latest[name]["output_name"] == record["output_name"], "the batch's own output is replaced in place"
        assert not np.array_equal(np.asarray(Image.open(out / record["output_name"])), old_pixels[name]), name
    assert (out / run["user_target"]).read_bytes() == USER_BYTES
    assert not list(out.glob(".sdedit-batch-*.tmp"))
    back = batch(*run["args"])  # the earlier settings are now the changed ones
    assert back.returncode == 2 and "strength: 0.3 -> the workflow's" in back.stderr, back.stderr


def _ksampler_workflow():
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "x.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "b", "clip": ["1", 1]}},
        "4": {"class_type": "LoadImage", "inputs": {"image": "x.png"}},
        "5": {"class_type": "VAEEncode", "inputs": {"pixels": ["4", 0], "vae": ["1", 2]}},
        "6": {"class_type": "KSampler", "inputs": {"seed": 0, "steps": 4, "cfg": 7, "sampler_name": "euler",
                                                   "scheduler": "normal", "denoise": 0.6, "model": ["1", 0],
                                                   "positive": ["2", 0], "negative": ["3", 0],
                                                   "latent_image": ["5", 0]}},
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["1", 2]}},
        "8": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x", "images": ["7", 0]}},
    }


def _without_load_image():
    workflow = json.loads(API_WORKFLOW.read_text())
    del workflow["4"]
    return workflow


def _two_save_images():
    workflow = json.loads(API_WORKFLOW.read_text())
    workflow["10"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "again", "images": ["8", 0]}}
    return workflow


def _positive_not_a_text_encoder():
    workflow = _ksampler_workflow()
    workflow["2"] = {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["3", 0]}}
    return workflow


@pytest.mark.parametrize("workflow, flags, needs", [
    (_without_load_image, [], "exactly one LoadImage node"),
    (_two_save_images, [], "exactly one SaveImage node, whose picture becomes the output (it has 2: nodes 9, 10)"),
    (_ksampler_workflow, ["--strength", "0.5"], "SDEditAddNoise"),
    (_positive_not_a_text_encoder, ["--prompt", "a cat"], "CLIPTextEncode node wired to a sampler's `positive`"),
    (lambda: json.loads((REPO / "example_workflows" / "sdedit_img2img.json").read_text()), [], "API-format"),
], ids=["no-load-image", "two-save-images", "strength-without-add-noise", "prompt-without-text-encoder", "ui-format"])
def test_unsuitable_workflows_get_a_clear_message(tmp_path, workflow, flags, needs):
    path = tmp_path / "workflow.json"
    path.write_text(json.dumps(workflow()))
    make_images(tmp_path / "in", SIZES[:1])
    result = batch("--workflow", path, "--input", tmp_path / "in", "--output", tmp_path / "out", *flags)
    assert result.returncode != 0 and needs in result.stderr, result.stderr
    assert not (tmp_path / "out").exists(), "nothing may be written for a workflow that does not fit"


def test_ctrl_c_stops_cleanly_and_the_next_run_resumes(tmp_path, checkpoint_path):
    names = make_images(tmp_path / "in", SIZES[:5])
    out, work = tmp_path / "out", tmp_path / "work"
    args = ["--workflow", small_workflow(tmp_path / "workflow.json"), "--input", tmp_path / "in", "--output", out,
            "--workers", 1, "--workdir", work]  # no --ckpt: the test checkpoint (checkpoint_path), with a notice
    # A session of its own, so SIGINT can go to the whole process group, as Ctrl-C in a terminal sends it.
    # SIGINT at its default, as in a terminal's foreground job: a test run started in the background (`cmd &` in a
    # script) ignores SIGINT, the driver would inherit that and finish every image (CI saw rc 0).
    driver = subprocess.Popen([sys.executable, str(BATCH), "--comfyui", str(COMFYUI), *map(str, args)],
                              stderr=subprocess.PIPE, text=True, start_new_session=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (
            (out / "manifest.jsonl").is_file() and (out / "manifest.jsonl").read_text().count("\n") >= 1):
        assert driver.poll() is None, driver.stderr.read()
        time.sleep(0.05)
    os.killpg(driver.pid, signal.SIGINT)
    _, stderr = driver.communicate(timeout=120)
    assert driver.returncode == 130, stderr
    assert "interrupted" in stderr and "Run the same command again to resume" in stderr
    assert "No --ckpt given: using the small random-weight test checkpoint" in stderr
    records = manifest(out)  # every line is complete JSON
    done_first = {r["name"] for r in records if r["status"] == "ok"}
    assert 1 <= len(done_first) < len(names), stderr
    assert not list(out.glob(".sdedit-batch-*.tmp"))
    assert not servers_under(work), "a ComfyUI server outlived the interrupted batch"

    resumed = batch(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(done_first)} done earlier" in resumed.stderr
    oks = ok_records(out)
    assert sorted(oks) == sorted(names) and all(len(r) == 1 for r in oks.values()), oks
    assert sorted(p.name for p in out.glob("*.png")) == sorted(r[0]["output_name"] for r in oks.values())


def _setup_for_batch_sh(tmp_path, with_this_environment: bool) -> dict:
    """A stand-in ComfyUI folder and a fresh venv marked current for setup.sh, so nothing shared is touched. With
    `with_this_environment` the venv sees this environment's packages (Ray included) through a .pth file."""
    comfy = tmp_path / "ComfyUI"
    (comfy / "comfy").mkdir(parents=True)
    (comfy / "main.py").write_text("")
    (comfy / "comfyui_version.py").write_text((COMFYUI / "comfyui_version.py").read_text())
    (comfy / "requirements.txt").write_text((COMFYUI / "requirements.txt").read_text())
    venv = tmp_path / "venv"
    # Without this environment: pip from ensurepip's bundled wheel, and no Ray.
    subprocess.run([sys.executable, "-m", "venv", *(["--without-pip"] if with_this_environment else []), str(venv)],
                   check=True)
    if with_this_environment:
        site = next((venv / "lib").glob("python3*/site-packages"))
        (site / "this_environment.pth").write_text(str(pathlib.Path(ray.__file__).parents[1]) + "\n")
    stamp = subprocess.run(
        ["bash", "-c", 'grep -v -E "^\\s*(torch|torchvision|torchaudio)\\s*$" "$1/requirements.txt" | '
         'cat - "$2/scripts/constraints.txt" "$2/requirements.txt" "$2/requirements-dev.txt" | sha256sum | cut -c1-16',
         "stamp", str(comfy), str(REPO)], capture_output=True, text=True, check=True).stdout.strip()
    (venv / ".sdedit-setup").write_text(stamp + "\n")
    return {**os.environ, "COMFYUI_PATH": str(comfy), "SDEDIT_VENV": str(venv)}


def test_batch_sh_says_clearly_when_pip_cannot_install_ray(tmp_path):
    """scripts/batch.sh installs Ray on first use; where the package index cannot be reached it says so and stops
    (the index here is a closed local port)."""
    env = {**_setup_for_batch_sh(tmp_path, with_this_environment=False), "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
           "PIP_FIND_LINKS": "", "PIP_RETRIES": "0", "PIP_TIMEOUT": "5", "PIP_NO_CACHE_DIR": "1"}
    result = subprocess.run(["bash", str(REPO / "scripts" / "batch.sh"), "--help"], env=env, capture_output=True,
                            text=True, timeout=300)
    assert "virtual environment up to date" in result.stderr, result.stderr
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Ray is not installed" in result.stderr and "pip could not install ray[data]==2.60.0" in result.stderr
    assert "no access to the package index?" in result.stderr


def test_batch_sh_runs_the_batch_where_ray_is_installed(tmp_path):
    env = _setup_for_batch_sh(tmp_path, with_this_environment=True)
    result = subprocess.run(["bash", str(REPO / "scripts" / "batch.sh"), "--help"], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "usage: batch.py" in result.stdout and "--address" in result.stdout
    assert "installing" not in result.stderr
