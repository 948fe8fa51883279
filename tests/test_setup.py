"""scripts/setup.sh: finds ComfyUI or says what to do, and never overwrites what the user made."""
import os
import pathlib
import shutil
import subprocess
import sys
import tomllib

import pytest

from conftest import COMFYUI, REPO

SETUP = REPO / "scripts" / "setup.sh"


def run_setup(env_overrides, home, *args):
    env = {k: v for k, v in os.environ.items() if k != "COMFYUI_PATH"}
    env.update({"HOME": str(home), "SDEDIT_VENV": sys.prefix, **env_overrides})
    return subprocess.run(["bash", str(SETUP), *args], env=env, capture_output=True, text=True, timeout=600)


def fake_comfyui(root: pathlib.Path, version="0.3.64") -> pathlib.Path:
    """Just enough of a ComfyUI checkout for setup.sh: its real requirements, so the venv is current."""
    (root / "comfy").mkdir(parents=True)
    (root / "main.py").write_text("")
    (root / "comfyui_version.py").write_text(f'__version__ = "{version}"\n')
    shutil.copyfile(COMFYUI / "requirements.txt", root / "requirements.txt")
    return root


def test_a_wrong_comfyui_path_is_refused_with_the_fix(tmp_path):
    result = run_setup({"COMFYUI_PATH": str(tmp_path)}, tmp_path)
    assert result.returncode == 1
    assert "COMFYUI_PATH" in result.stderr and "not a ComfyUI checkout" in result.stderr


def test_without_comfyui_or_network_it_says_what_to_do_and_leaves_nothing_half_made(tmp_path):
    result = run_setup({"COMFYUI_GIT_URL": f"file://{tmp_path}/no-such-repo"}, tmp_path)
    assert result.returncode == 1
    assert "could not clone ComfyUI" in result.stderr and "COMFYUI_PATH=" in result.stderr
    assert not (tmp_path / "comfy").exists(), "no empty ~/comfy is left behind"


def test_a_comfyui_older_than_the_tested_range_is_refused(tmp_path):
    """The oldest release comes from pyproject.toml's requires-comfyui, the one place it is stated."""
    oldest = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["comfy"]["requires-comfyui"][2:]
    major, minor, patch = (int(p) for p in oldest.split("."))
    older = f"{major}.{minor}.{patch - 1}" if patch else f"{major}.{minor - 1}.99"
    result = run_setup({"COMFYUI_PATH": str(fake_comfyui(tmp_path / "ComfyUI", older))}, tmp_path)
    assert result.returncode == 1 and f"{oldest} or newer" in result.stderr


def test_links_the_pack_and_is_quick_to_rerun(tmp_path):
    comfy = fake_comfyui(tmp_path / "ComfyUI")
    first = run_setup({"COMFYUI_PATH": str(comfy)}, tmp_path)
    assert first.returncode == 0, first.stderr
    link = comfy / "custom_nodes" / "sdedit-img2img"
    assert link.is_symlink() and link.resolve() == REPO
    assert f"COMFYUI_PATH={comfy}" in first.stdout
    again = run_setup({"COMFYUI_PATH": str(comfy)}, tmp_path)
    assert again.returncode == 0 and "up to date" in again.stderr


def test_a_folder_the_user_made_in_custom_nodes_is_left_alone(tmp_path):
    comfy = fake_comfyui(tmp_path / "ComfyUI")
    mine = comfy / "custom_nodes" / "sdedit-img2img"
    mine.mkdir(parents=True)
    (mine / "my_notes.txt").write_text("keep me")
    result = run_setup({"COMFYUI_PATH": str(comfy)}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert not mine.is_symlink() and (mine / "my_notes.txt").read_text() == "keep me"
    assert "left as it is" in result.stderr


def test_for_a_run_it_leaves_custom_nodes_alone_and_a_tests_environment_serves(tmp_path):
    """setup.sh --run (img2img.sh where there is no ComfyUI at all): the run's workspace holds the pack's link, so
    nothing goes into ComfyUI's custom_nodes; an environment made for the tests has all a run needs."""
    comfy = fake_comfyui(tmp_path / "ComfyUI")
    result = run_setup({"COMFYUI_PATH": str(comfy)}, tmp_path, "--run")
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stderr
    assert not (comfy / "custom_nodes").exists()
    assert f"VENV={sys.prefix}" in result.stdout


def recording_python(folder: pathlib.Path) -> pathlib.Path:
    """A `python` for setup.sh whose `-m venv DIR` makes DIR/bin/python, a stand-in for the venv's pip that records
    its arguments in DIR/pip-args and installs nothing; anything else goes to this Python."""
    pip = folder / "recording-pip"
    pip.write_text('#!/bin/bash\nprintf "%s\\n" "$@" > "$(dirname "$0")/../pip-args"\n')
    fake = folder / "python"
    fake.write_text(f'#!/bin/bash\nif [ "$1 $2" = "-m venv" ]; then mkdir -p "$3/bin" && cp "{pip}" "$3/bin/python" '
                    f'&& chmod +x "$3/bin/python"; exit; fi\nexec "{sys.executable}" "$@"\n')
    fake.chmod(0o755)
    return fake


@pytest.mark.parametrize("index", [None, "http://127.0.0.1:9/whl/cpu"])
@pytest.mark.parametrize("gpu", [False, True])
def test_for_a_run_without_a_gpu_it_says_how_to_get_the_cpu_build_and_takes_the_index(tmp_path, index, gpu):
    """setup.sh --run on Linux x86-64 without nvidia-smi names SDEDIT_TORCH_INDEX before pip fetches the registry's
    CUDA torch; with the variable, pip gets it as a second index, and a change of index re-installs."""
    bins = tmp_path / "bin"
    bins.mkdir()
    if gpu:
        (bins / "nvidia-smi").write_text("#!/bin/sh\nexit 0\n")
        (bins / "nvidia-smi").chmod(0o755)
    elif shutil.which("nvidia-smi"):
        pytest.fail("this machine has nvidia-smi: the no-GPU case needs a machine without one")
    venv = tmp_path / "venv"
    env = {"COMFYUI_PATH": str(fake_comfyui(tmp_path / "ComfyUI")), "SDEDIT_VENV": str(venv),
           "PYTHON": str(recording_python(bins)), "PATH": f"{bins}:{os.environ['PATH']}"}
    if index:
        env["SDEDIT_TORCH_INDEX"] = index
    result = run_setup(env, tmp_path, "--run")
    assert result.returncode == 0, result.stderr
    args = (venv / "pip-args").read_text().split("\n")
    linux_x86 = os.uname().sysname == "Linux" and os.uname().machine == "x86_64"
    hinted = "SDEDIT_TORCH_INDEX=https://download.pytorch.org/whl/cpu" in result.stderr
    assert hinted == (linux_x86 and not gpu and not index)
    if index:
        assert args[args.index("--extra-index-url") + 1] == index and "torch" in args
        assert f"torch from {index}" in result.stderr
        (venv / "pip-args").unlink()
        other = run_setup({**env, "SDEDIT_TORCH_INDEX": index + "/other"}, tmp_path, "--run")
        assert other.returncode == 0 and "--extra-index-url" in (venv / "pip-args").read_text(), "re-installed"
    else:
        assert "--extra-index-url" not in args
