"""Installs the pack the ways users do, offline, into a fresh ComfyUI, and runs the example through it.

- ComfyUI-Manager's own command line (`cm-cli install <git URL>`, from the `comfyui-manager` package)
  clones this repository from a file:// URL standing in for the network, names the folder as the
  Manager does and installs requirements.txt (which asks for nothing).
- A `git archive` export under a folder name of the user's choosing: nothing depends on the folder's
  name or on a git checkout.
- comfy-cli's own check before `comfy node publish` (`comfy node validate`) passes on pyproject.toml.

The fresh ComfyUI is a copy of the one at COMFYUI_PATH without its custom_nodes and user folders.
"""
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tomllib

import pytest
from harness import ComfyServer
from conftest import API_WORKFLOW, COMFYUI, REPO, SAMPLE_IMAGE
from PIL import Image
from helpers import pack_folder

BIN = pathlib.Path(sys.executable).parent
SMALL = (96, 72)
NODE_IDS = ["SDEditEncode", "SDEditAddNoise", "SDEditSampler", "SDEditDecode"]
# Every example workflow the host offers from the pack's example_workflows/ (its own listing, in no set order).
EXAMPLES = sorted(p.stem for p in (REPO / "example_workflows").glob("*.json"))
# Top-level folders of a ComfyUI install that hold the user's things, not ComfyUI itself.
USER_FOLDERS = {"custom_nodes", "models", "input", "output", "user", "temp", ".git", "venv", ".venv"}


def tool(name: str) -> str:
    path = BIN / name
    assert path.is_file(), f"{name} is missing from {BIN}: install requirements-dev.txt (scripts/setup.sh does)"
    return str(path)


def fresh_comfyui(dest: pathlib.Path) -> pathlib.Path:
    def ignore(folder, names):
        skip = USER_FOLDERS if pathlib.Path(folder) == COMFYUI else set()
        return [n for n in names if n in skip or n == "__pycache__"]
    shutil.copytree(COMFYUI, dest, symlinks=True, ignore=ignore)
    (dest / "custom_nodes").mkdir()
    return dest


def offline_env(home: pathlib.Path, **extra) -> dict:
    """No telemetry, and a HOME of the test's own so no tool writes into the user's."""
    home.mkdir(parents=True, exist_ok=True)
    return dict(os.environ, HOME=str(home), DO_NOT_TRACK="1", COMFY_NO_TELEMETRY="1",
                GIT_TERMINAL_PROMPT="0", **extra)


def tree_has_no_symlink(folder: pathlib.Path) -> bool:
    return not folder.is_symlink() and not any(p.is_symlink() for p in folder.rglob("*"))


def run_example(comfyui: pathlib.Path, checkpoint: pathlib.Path) -> tuple[str, dict]:
    """Starts `comfyui` as it is (its own custom_nodes) and runs the example's API twin through it; checks the
    help pages where the frontend looks. Returns (the pack's folder as the frontend sees it, /api/workflow_templates)."""
    (comfyui / "models" / "checkpoints").mkdir(parents=True, exist_ok=True)
    os.symlink(checkpoint.resolve(), comfyui / "models" / "checkpoints" / checkpoint.name)
    # The sample picture at 96x72 and 4 steps keep the run short on a CPU; the graph is the API twin's.
    (comfyui / "input").mkdir(exist_ok=True)
    Image.open(SAMPLE_IMAGE).resize(SMALL).save(comfyui / "input" / SAMPLE_IMAGE.name)
    prompt = json.loads(API_WORKFLOW.read_text())
    node = {n["class_type"]: n["inputs"] for n in prompt.values()}
    node["CheckpointLoaderSimple"]["ckpt_name"] = checkpoint.name
    node["SDEditSampler"]["steps"] = 4
    with ComfyServer(comfyui, comfyui) as server:
        [png] = server.run_images(prompt)
        assert Image.open(png).size == SMALL
        info = server.get("/object_info")
        folder = pack_folder(info["SDEditEncode"]["python_module"])
        pages = {n: server.get(f"/extensions/{folder}/docs/{n}.md") for n in NODE_IDS}
        templates = server.get("/api/workflow_templates")
        log = server.log
    pack_lines = [line for line in log.splitlines() if folder in line]
    assert any("custom_nodes" in line for line in pack_lines), "the pack was not loaded"
    assert not [line for line in pack_lines if "IMPORT FAILED" in line or "Cannot import" in line], pack_lines
    assert all(pages[n] == (REPO / "js" / "docs" / f"{n}.md").read_bytes() for n in NODE_IDS)
    return folder, templates


def manager_folder_name(url: str) -> str:
    """How ComfyUI-Manager names the folder of a pack installed from a git URL (gitclone_install)."""
    return os.path.splitext(os.path.basename(url.rstrip("/")))[0]


@pytest.fixture(scope="module")
def remote(tmp_path_factory) -> str:
    """This repository's committed HEAD behind a file:// URL shaped like a hosted one (…/sdedit-img2img.git).

    `localhost` in the URL: the Manager accepts only URLs with a host, and git reads file://localhost/ as local.
    """
    bare = tmp_path_factory.mktemp("remote") / "sdedit-img2img.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(REPO), str(bare)], check=True)
    return f"file://localhost{bare}"


def test_manager_install_from_a_git_url_runs_the_example(tmp_path, remote, checkpoint_path):
    comfyui = fresh_comfyui(tmp_path / "ComfyUI")
    result = subprocess.run([tool("cm-cli"), "install", remote], cwd=tmp_path, capture_output=True, text=True,
                            env=offline_env(tmp_path / "home", COMFYUI_PATH=str(comfyui)), timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "[INSTALLED]" in output, output[-3000:]
    assert "Install: pip packages" in output, "the Manager did not process requirements.txt"

    installed = comfyui / "custom_nodes" / manager_folder_name(remote)
    assert sorted(p.name for p in (comfyui / "custom_nodes").iterdir()) == ["sdedit-img2img"]
    assert tree_has_no_symlink(installed)
    head = subprocess.run(["git", "-C", str(installed), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert head.stdout.strip() == subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"],
                                                 capture_output=True, text=True).stdout.strip()
    # requirements.txt asks for nothing: installing it again changes nothing in the environment
    dry = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-index",
                          "-r", str(installed / "requirements.txt")], capture_output=True, text=True)
    assert dry.returncode == 0 and "Would install" not in dry.stdout, dry.stdout + dry.stderr

    folder, templates = run_example(comfyui, checkpoint_path)
    assert folder == "sdedit-img2img" and sorted(templates[folder]) == EXAMPLES


def test_an_archive_export_under_another_name_runs_the_example(tmp_path, checkpoint_path):
    """No .git, an unexpected folder name (a GitHub "Download ZIP" gives <repo>-main)."""
    comfyui = fresh_comfyui(tmp_path / "ComfyUI")
    installed = comfyui / "custom_nodes" / "SDEdit_Img2Img-main"
    installed.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", "HEAD"], capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(installed)], input=archive, check=True)
    assert not (installed / ".git").exists() and tree_has_no_symlink(installed)

    folder, templates = run_example(comfyui, checkpoint_path)
    assert folder == "SDEdit_Img2Img-main" and sorted(templates[folder]) == EXAMPLES


def test_pack_sources_do_not_name_the_install_folder():
    """The folder is whatever the user or the Manager chose: the pack's code never spells it."""
    sources = [REPO / "__init__.py", *sorted((REPO / "nodes").glob("*.py")), *sorted((REPO / "js").rglob("*.js"))]
    for path in sources:
        text = path.read_text()
        assert not re.search(r"sdedit-img2img|custom_nodes|\.git\b", text), path


# --- the Comfy Registry -----------------------------------------------------------------------------

def tracked_files_copy(dest: pathlib.Path) -> pathlib.Path:
    """The files `comfy node publish` would pack (git-tracked ones), as they are in the working tree."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def test_comfy_cli_publish_validation_passes(tmp_path):
    """`comfy node validate` runs the checks `comfy node publish` runs before it uploads (offline)."""
    pack = tracked_files_copy(tmp_path / "pack")
    result = subprocess.run([tool("comfy"), "--skip-prompt", "--no-json", "node", "validate"], cwd=pack,
                            capture_output=True, text=True, env=offline_env(tmp_path / "home"), timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "All validation checks passed" in output and "Security warnings" not in output, output
    assert "Warning" not in output, output  # comfy-cli drops a malformed field with only a warning


def test_what_the_registry_reads_from_pyproject(tmp_path):
    """The fields as comfy-cli's parser hands them to the Registry, and the Registry's documented rules
    for them that comfy-cli leaves to the server (name, version)."""
    from comfy_cli.registry import extract_node_configuration
    config = extract_node_configuration(str(REPO / "pyproject.toml"))
    project, comfy = config.project, config.tool_comfy
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project.supported_comfyui_version == declared["tool"]["comfy"]["requires-comfyui"] == ">=0.3.50"
    assert project.version == declared["project"]["version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", project.version)
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]*([-_.][A-Za-z0-9]+)*", project.name) and len(project.name) < 100
    assert "comfyui" not in project.name.lower()
    assert comfy.publisher_id and comfy.display_name
    assert project.license.file == "LICENSE" and (REPO / "LICENSE").is_file()
    assert project.supported_os == ["OS Independent"]
    assert project.dependencies == []
    # Left out until the repository is public (pyproject.toml says so): no invented location.
    assert project.urls.repository == "" and comfy.icon == ""
