"""The pack installed the way ComfyUI-Manager installs from a git URL, offline: `git clone` of this
repository (a local file:// URL stands in for the network) into a fresh custom_nodes folder under the name
the Manager derives from the URL (the URL's last component without `.git`), no symlink, its
requirements.txt installed with pip; then that ComfyUI starts and runs the example's API twin.

The folder name is deliberately unlike the repository's, so nothing may depend on it; a second install
from a `git archive` export (no .git folder) shows nothing depends on being a git checkout either."""
import io
import json
import pathlib
import subprocess
import sys
import tarfile
import urllib.parse

import numpy as np
import pytest
from conftest import API_WORKFLOW, COMFYUI, REPO, SAMPLE_IMAGE
from PIL import Image


def manager_folder_name(url: str) -> str:
    """ComfyUI-Manager's name for a git install: the URL's last path component without `.git`."""
    name = url.rstrip("/").split("/")[-1]
    return name[:-4] if name.endswith(".git") else name


def install_from_git(custom_nodes: pathlib.Path, url: str) -> pathlib.Path:
    target = custom_nodes / manager_folder_name(url)
    subprocess.run(["git", "clone", "--quiet", url, str(target)], check=True)
    return target


def install_from_archive(custom_nodes: pathlib.Path, name: str) -> pathlib.Path:
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", "HEAD"],
                             check=True, capture_output=True).stdout
    target = custom_nodes / name
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


def pip_install_requirements(pack: pathlib.Path) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index",
                             "-r", str(pack / "requirements.txt")], capture_output=True, text=True)
    assert result.returncode == 0, f"pip install -r requirements.txt failed:\n{result.stderr}"


@pytest.fixture(scope="module", params=["git", "archive"])
def installed(request, tmp_path_factory, checkpoint_path):
    from comfy_server import ComfyServer, prepare_workspace
    base = prepare_workspace(tmp_path_factory.mktemp(f"install-{request.param}"), checkpoint_path, [SAMPLE_IMAGE],
                             link_pack=False)
    if request.param == "git":
        # The Manager clones the URL it is given; a bare mirror stands in for the hosted repository.
        mirror = tmp_path_factory.mktemp("remote") / "ComfyUI-SDEdit_Img2Img.git"
        subprocess.run(["git", "clone", "--quiet", "--bare", str(REPO), str(mirror)], check=True)
        pack = install_from_git(base / "custom_nodes", mirror.as_uri())
        assert pack.name == "ComfyUI-SDEdit_Img2Img" and (pack / ".git").is_dir()
    else:
        pack = install_from_archive(base / "custom_nodes", "sdedit_Img2Img.from-archive")
        assert not (pack / ".git").exists()
    assert not pack.is_symlink()
    pip_install_requirements(pack)
    with ComfyServer(COMFYUI, base) as server:
        yield server, pack


def test_the_installed_pack_loads_under_its_folder_name(installed):
    server, pack = installed
    lines = [line for line in server.log.splitlines() if pack.name in line]
    assert any("seconds" in line for line in lines), f"{pack.name} not in the import times:\n{server.log[-3000:]}"
    assert not [line for line in lines if "IMPORT FAILED" in line], lines
    info = server.get("/object_info")
    assert {"SDEditEncode", "SDEditAddNoise", "SDEditSampler", "SDEditDecode", "SDEditStrengthSweep"} <= set(info)
    assert any(url.endswith("/sdedit.js") for url in server.get("/extensions"))


def test_the_installed_pack_serves_its_templates_and_thumbnails(installed):
    server, pack = installed
    templates, folder = server.get("/api/workflow_templates"), urllib.parse.quote(pack.name)
    assert "sdedit_img2img" in templates[pack.name], templates
    for name in templates[pack.name]:
        status, body = server.request("GET", f"/api/workflow_templates/{folder}/{name}.json")
        assert status == 200 and isinstance(body, dict) and body["nodes"], name
    status, thumbnail = server.request("GET", f"/api/workflow_templates/{folder}/sdedit_img2img.jpg")
    assert status == 200 and thumbnail[:3] == b"\xff\xd8\xff", "the thumbnail is not served as a JPEG"
    for help_page in (REPO / "js" / "docs").glob("*.md"):  # the node library's help pages
        status, body = server.request("GET", f"/extensions/{folder}/docs/{help_page.name}")
        assert status == 200 and body == help_page.read_bytes(), help_page.name


def test_the_installed_pack_runs_the_example_api_twin(installed, checkpoint_path):
    server, _ = installed
    prompt = json.loads(API_WORKFLOW.read_text())
    next(n for n in prompt.values() if n["class_type"] == "CheckpointLoaderSimple")["inputs"]["ckpt_name"] = \
        checkpoint_path.name
    next(n for n in prompt.values() if n["class_type"] == "SDEditSampler")["inputs"]["steps"] = 4
    status, response = server.queue(prompt)
    assert status == 200, response
    entry = server.wait(response["prompt_id"])
    assert entry["status"]["status_str"] == "success", entry["status"]
    [png] = server.saved_images(entry)
    width, height = Image.open(SAMPLE_IMAGE).size
    image = np.asarray(Image.open(png).convert("RGB"))
    assert image.shape == (height, width, 3) and image.std() > 1.0
