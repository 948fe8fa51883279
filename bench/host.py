"""Puts the ComfyUI host on sys.path (CPU only) and loads this pack as ComfyUI does, for bench scripts.

The same steps as tests/conftest.py: COMFYUI_PATH or ~/comfy/ComfyUI, `args.cpu` before
comfy.model_management is imported, the pack imported by file location as `sdedit_img2img`.
"""
import importlib.util
import os
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
PACK = "sdedit_img2img"
RESULTS = REPO / "bench" / "results"


def comfyui_path() -> pathlib.Path:
    path = pathlib.Path(os.environ.get("COMFYUI_PATH") or pathlib.Path.home() / "comfy" / "ComfyUI")
    if not (path / "main.py").is_file():
        sys.exit(f"No ComfyUI checkout at {path}: set COMFYUI_PATH (scripts/setup.sh places one).")
    return path


def setup_host() -> pathlib.Path:
    path = comfyui_path()
    for entry in (str(REPO / "scripts"), str(path)):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    import comfy.cli_args
    comfy.cli_args.args.cpu = True
    return path


def load_pack():
    if PACK in sys.modules:
        return sys.modules[PACK]
    spec = importlib.util.spec_from_file_location(PACK, REPO / "__init__.py", submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK] = module
    spec.loader.exec_module(module)
    return module


def load_checkpoint(path: str | None = None):
    """(model, clip, vae, checkpoint path) through the host's CheckpointLoaderSimple."""
    import folder_paths
    import tiny_checkpoint

    import nodes
    ckpt = pathlib.Path(path).expanduser().resolve() if path else tiny_checkpoint.ensure_checkpoint()
    folder_paths.add_model_folder_path("checkpoints", str(ckpt.parent), is_default=True)
    return (*nodes.CheckpointLoaderSimple().load_checkpoint(ckpt.name), ckpt)


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model}"
