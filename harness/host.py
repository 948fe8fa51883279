"""Finds ComfyUI, puts it on sys.path on the CPU and loads this pack as ComfyUI's custom-node loader does.

The one place that knows how: tests/conftest.py, bench/ and scripts/ call these functions.
"""
import importlib.util
import os
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
PACK = "sdedit_img2img"  # the module name the pack is imported under
EXAMPLES = REPO / "example_workflows"
SAMPLE_IMAGE = EXAMPLES / "input" / "sdedit_example.png"
UI_WORKFLOW = EXAMPLES / "sdedit_img2img.json"
API_WORKFLOW = EXAMPLES / "api" / "sdedit_img2img.json"


class HostMissing(RuntimeError):
    """No ComfyUI checkout where one was looked for; the message says how to get one."""


def comfyui_path(path=None) -> pathlib.Path:
    """`path`, else $COMFYUI_PATH, else comfy-cli's default ~/comfy/ComfyUI; it must be a ComfyUI checkout."""
    found = pathlib.Path(path or os.environ.get("COMFYUI_PATH") or pathlib.Path.home() / "comfy" / "ComfyUI")
    found = found.expanduser().resolve()
    if not (found / "main.py").is_file() or not (found / "comfy").is_dir():
        raise HostMissing(f"The ComfyUI runtime is missing: no ComfyUI checkout at {found}. "
                          "Run scripts/setup.sh, or set COMFYUI_PATH to a ComfyUI 0.3.64+ checkout.")
    return found


def setup_host(path=None) -> pathlib.Path:
    """Puts ComfyUI first on sys.path (ahead of this repository, whose nodes/ would hide the host's nodes.py) and
    sets its CPU flag before comfy.model_management is imported. Returns the ComfyUI folder."""
    comfyui = comfyui_path(path)
    if str(comfyui) in sys.path:
        sys.path.remove(str(comfyui))
    sys.path.insert(0, str(comfyui))
    import comfy.cli_args
    comfy.cli_args.args.cpu = True
    return comfyui


def load_pack():
    """Imports the repository as the package `sdedit_img2img` by file location, like ComfyUI's custom-node loader."""
    if PACK in sys.modules:
        return sys.modules[PACK]
    spec = importlib.util.spec_from_file_location(PACK, REPO / "__init__.py", submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK] = module
    spec.loader.exec_module(module)
    return module


def load_checkpoint(path=None):
    """(model, clip, vae, checkpoint path) through the host's CheckpointLoaderSimple; with no `path`, the test
    checkpoint (harness/checkpoint.py). Needs setup_host() first."""
    import folder_paths
    import nodes

    from harness import checkpoint
    ckpt = pathlib.Path(path).expanduser().resolve() if path else checkpoint.ensure_checkpoint()
    folder_paths.add_model_folder_path("checkpoints", str(ckpt.parent), is_default=True)
    return (*nodes.CheckpointLoaderSimple().load_checkpoint(ckpt.name), ckpt)
