"""scripts/img2img.sh and img2img.py, the README's first command: the example workflow on a real server, headless,
on the user's own ComfyUI and the Python that runs it, writing only its workspace."""
import os
import pathlib
import re
import subprocess
import sys
import time

import pytest
from conftest import COMFYUI, REPO
from PIL import Image

SCRIPT = REPO / "scripts" / "img2img.py"
SHELL = REPO / "scripts" / "img2img.sh"
SAMPLE = REPO / "example_workflows" / "input" / "sdedit_example.png"


def img2img(*args, out):
    return subprocess.run([sys.executable, str(SCRIPT), "--comfyui", str(COMFYUI), "--out", str(out), *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def shell(*args, env=None, timeout=900):
    """bash scripts/img2img.sh with COMFYUI_PATH and COMFYUI_PYTHON unset (unless `env` sets them)."""
    base = {k: v for k, v in os.environ.items() if k not in ("COMFYUI_PATH", "COMFYUI_PYTHON", "VIRTUAL_ENV")}
    return subprocess.run(["bash", str(SHELL), *map(str, args)], env={**base, **(env or {})}, capture_output=True,
                          text=True, timeout=timeout, cwd="/")


def tree(folder: pathlib.Path) -> dict:
    """Every path under `folder` with its size and modification time (a link: its target)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        out[str(path.relative_to(folder))] = os.readlink(path) if path.is_symlink() else (
            None if path.is_dir() else (path.stat().st_size, path.stat().st_mtime_ns))
    return out


@pytest.fixture(scope="module")
def user_comfyui(tmp_path_factory):
    """A user's ComfyUI install: the real runtime's files (linked), its own custom_nodes/ and models/ with the
    user's files in them, and a venv/ inside that runs it (the test environment, linked: no new environment)."""
    root = tmp_path_factory.mktemp("user") / "ComfyUI"
    root.mkdir()
    for entry in COMFYUI.iterdir():
        if entry.name not in ("custom_nodes", "models", "user", "input", "output", "venv", ".venv"):
            (root / entry.name).symlink_to(entry)
    (root / "custom_nodes" / "someone_elses_pack").mkdir(parents=True)
    (root / "custom_nodes" / "someone_elses_pack" / "__init__.py").write_text("NODE_CLASS_MAPPINGS = {}\n")
    for sub in ("checkpoints", "loras", "vae"):
        (root / "models" / sub).mkdir(parents=True)
    (root / "models" / "loras" / "my_style.safetensors").write_bytes(b"not really a LoRA")
    (root / "venv").symlink_to(pathlib.Path(sys.prefix), target_is_directory=True)
    return root


def test_help_answers_at_once_before_any_set_up_and_writes_nothing(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    before = tree(REPO / "scripts")
    started = time.monotonic()
    result = shell("--help", env={"HOME": str(home), "COMFYUI_GIT_URL": f"file://{tmp_path}/no-such-repo"})
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert seconds < 10, f"--help took {seconds:.1f} s: it must not set anything up"
    text = " ".join(result.stdout.split())
    for needed in ("--comfyui PATH", "COMFYUI_PATH", "--python PATH", "COMFYUI_PYTHON", "--download", "--cpu",
                   "random-weight test checkpoint", "NOISE", "v1-5-pruned-emaonly-fp16.safetensors"):
        assert needed in text, needed
    assert "clon" not in result.stderr and not any(home.iterdir()), "nothing is set up or written for --help"
    assert tree(REPO / "scripts") == before, "no __pycache__ or anything else written in the repository"


def test_comfyui_given_by_flag_alone_is_used_and_nothing_is_cloned(tmp_path):
    """--comfyui means what COMFYUI_PATH means: given (here, wrongly), nothing is cloned, no ~/comfy is made."""
    home = tmp_path / "home"
    home.mkdir()
    not_comfyui = tmp_path / "Downloads"
    not_comfyui.mkdir()
    env = {"HOME": str(home), "COMFYUI_GIT_URL": f"file://{tmp_path}/no-such-repo"}
    for args, extra in ((["--comfyui", not_comfyui], {}), ([f"--comfyui={not_comfyui}"], {}),
                        ([], {"COMFYUI_PATH": str(not_comfyui)})):
        result = shell(*args, "--steps", 1, env={**env, **extra}, timeout=60)
        assert result.returncode == 1
        assert f"{not_comfyui} is not a ComfyUI folder" in result.stderr and "--comfyui PATH" in result.stderr
        assert "clon" not in result.stderr and not (home / "comfy").exists()


def test_a_comfyui_with_a_venv_inside_is_reused_and_left_as_it_was(tmp_path, user_comfyui, checkpoint_path):
    """The user's ComfyUI and its venv/ run it: no environment is made, the PNG is written in the workspace, the
    random weights are said once plainly and next to the PNG, and nothing in the user's folders changes."""
    before = tree(user_comfyui)
    own_venv = tmp_path / "would-be-venv"
    result = shell("--comfyui", user_comfyui, "--out", tmp_path / "out", "--steps", 2, "--strength", 0.5,
                   env={"SDEDIT_VENV": str(own_venv)})
    assert result.returncode == 0, result.stderr + result.stdout
    assert f"Python:  {user_comfyui}/venv/bin/python" in result.stderr
    assert not own_venv.exists(), "no environment of its own where the user's ComfyUI has one"
    assert result.stderr.count("THE PICTURE WILL BE NOISE") == 1
    written = re.findall(r"^Wrote (\S+\.png)  \(random test weights: this picture is noise", result.stdout, re.M)
    assert len(written) == 1 and written[0].startswith(str(tmp_path / "out")), result.stdout
    with Image.open(written[0]) as picture, Image.open(SAMPLE) as sample:
        assert picture.size == sample.size
    assert tree(user_comfyui) == before, "nothing in the user's ComfyUI is written"
    log = (tmp_path / "out" / "comfyui.log").read_text()
    assert "Failed to initialize database" not in log, "the database is the workspace's, not ComfyUI/user's"
    assert (tmp_path / "out" / "user" / "comfyui.db").is_file()


def test_a_python_that_lacks_comfyuis_requirements_is_named_with_the_command_and_nothing_installed(tmp_path):
    comfyui = tmp_path / "ComfyUI"
    comfyui.mkdir()
    for entry in COMFYUI.iterdir():
        if entry.name != "requirements.txt":
            (comfyui / entry.name).symlink_to(entry)
    # An essential line (above requirements.txt's "#non essential dependencies").
    (comfyui / "requirements.txt").write_text("sdedit-no-such-package>=1\n" + (COMFYUI / "requirements.txt").read_text())
    result = subprocess.run([sys.executable, str(SCRIPT), "--comfyui", str(comfyui), "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "lacks what ComfyUI needs to run: sdedit-no-such-package" in result.stderr
    assert f'"{sys.executable}" -m pip install -r "{comfyui / "requirements.txt"}"' in result.stderr
    assert "--python PATH" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_checkpoint_that_is_not_there_is_refused_naming_the_flag(tmp_path):
    result = img2img("--ckpt", "no-such-model.safetensors", out=tmp_path / "out")
    assert result.returncode != 0
    assert "--ckpt 'no-such-model.safetensors': no such file" in result.stderr
    assert "Give the path of" in result.stderr
    assert not (tmp_path / "out").exists(), "nothing is written before the checkpoint is found"


def test_download_without_network_says_so_and_writes_nothing_in_comfyui(tmp_path, user_comfyui):
    from loopback import closed_port
    before = tree(user_comfyui)
    for where in ([], ["comfyui"]):
        result = subprocess.run([sys.executable, str(SCRIPT), "--comfyui", str(user_comfyui), "--out",
                                 str(tmp_path / "out"), "--download", *where, "--download-from",
                                 f"http://127.0.0.1:{closed_port()}/v1-5-pruned-emaonly-fp16.safetensors"],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode != 0
        assert "--download: could not reach 127.0.0.1" in result.stderr and "no network" in result.stderr
        assert "--ckpt" in result.stderr, "the message says how to go on without the download"
    assert tree(user_comfyui) == before
