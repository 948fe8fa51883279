"""Puts the real ComfyUI runtime on sys.path (CPU only) and loads this pack as ComfyUI does.

There is no fallback: without the runtime every test fails here, loudly (run scripts/setup.sh).
"""
import importlib.util
import os
import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
PACK = "sdedit_img2img"
SAMPLE_IMAGE = REPO / "example_workflows" / "input" / "sdedit_example.png"
UI_WORKFLOW = REPO / "example_workflows" / "sdedit_img2img.json"
API_WORKFLOW = REPO / "example_workflows" / "api" / "sdedit_img2img.json"


def comfyui_path() -> pathlib.Path:
    path = pathlib.Path(os.environ.get("COMFYUI_PATH") or pathlib.Path.home() / "comfy" / "ComfyUI")
    if not (path / "main.py").is_file() or not (path / "comfy").is_dir():
        raise RuntimeError(f"The ComfyUI runtime is missing: no ComfyUI checkout at {path}. "
                           "Run scripts/setup.sh, or set COMFYUI_PATH to a ComfyUI 0.3.64+ checkout.")
    return path


COMFYUI = comfyui_path()
sys.path.insert(0, str(COMFYUI))
sys.path.insert(0, str(REPO / "scripts"))

import comfy.cli_args  # noqa: E402  (must follow the sys.path change)

comfy.cli_args.args.cpu = True  # before comfy.model_management is imported anywhere


def _load_pack():
    """Imports the repo as a package by file location, like ComfyUI's custom-node loader."""
    spec = importlib.util.spec_from_file_location(PACK, REPO / "__init__.py",
                                                  submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK] = module
    spec.loader.exec_module(module)
    return module


_load_pack()


@pytest.fixture(autouse=True)
def inference_mode():
    """Nodes run under inference mode in the host's executor; so do they here."""
    import torch
    with torch.inference_mode():
        yield


@pytest.fixture(scope="session")
def checkpoint_path() -> pathlib.Path:
    """The small random-weight SD1.5 checkpoint, built once and cached between runs."""
    import tiny_checkpoint
    return tiny_checkpoint.ensure_checkpoint()


@pytest.fixture(scope="session")
def sd15(checkpoint_path):
    """(model, clip, vae) from the host's own CheckpointLoaderSimple."""
    import folder_paths
    import nodes
    folder_paths.add_model_folder_path("checkpoints", str(checkpoint_path.parent), is_default=True)
    return nodes.CheckpointLoaderSimple().load_checkpoint(checkpoint_path.name)


@pytest.fixture(scope="module")
def server(tmp_path_factory, checkpoint_path):
    """A real `main.py --cpu` server with the pack installed, in a workspace of its own (one per test module)."""
    from comfy_server import ComfyServer, prepare_workspace
    base = prepare_workspace(tmp_path_factory.mktemp("comfyui"), checkpoint_path, [SAMPLE_IMAGE])
    with ComfyServer(COMFYUI, base) as running:
        yield running
