"""Puts the real ComfyUI runtime on sys.path (CPU only) and loads this pack as ComfyUI does, through the harness.

There is no fallback: without the runtime every test fails here, loudly (run scripts/setup.sh).
Fixtures shared by several test modules live here; helpers shared by several live in tests/helpers.py.
"""
import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the harness package; harness.setup_host() puts ComfyUI ahead of it

import harness  # noqa: E402  (after the sys.path line)
from harness import API_WORKFLOW, PACK, SAMPLE_IMAGE, UI_WORKFLOW  # noqa: E402, F401  (the tests import them from here)

COMFYUI = harness.setup_host()  # before comfy.model_management is imported anywhere
import nodes  # noqa: E402, F401  (the host's nodes.py, bound now: pytest may later put the repository, whose nodes/ would hide it, ahead on sys.path)
harness.load_pack()


@pytest.fixture(autouse=True)
def inference_mode():
    """Nodes run under inference mode in the host's executor; so do they here."""
    import torch
    with torch.inference_mode():
        yield


@pytest.fixture(scope="session")
def checkpoint_path() -> pathlib.Path:
    """The small random-weight SD1.5 checkpoint, built once and cached between runs."""
    from harness import checkpoint
    return checkpoint.ensure_checkpoint()


@pytest.fixture(scope="session")
def sd15(checkpoint_path):
    """(model, clip, vae) from the host's own CheckpointLoaderSimple."""
    return harness.load_checkpoint(checkpoint_path)[:3]


@pytest.fixture(scope="module")
def server(tmp_path_factory, checkpoint_path):
    """A real `main.py --cpu` server with the pack installed, in a workspace of its own (one per test module)."""
    base = harness.prepare_workspace(tmp_path_factory.mktemp("comfyui"), checkpoint_path, [SAMPLE_IMAGE])
    with harness.ComfyServer(COMFYUI, base) as running:
        yield running


@pytest.fixture(scope="module")
def model(sd15):
    return sd15[0]


@pytest.fixture(scope="module")
def vae(sd15):
    return sd15[2]


@pytest.fixture(scope="module")
def conds(sd15):
    """(positive, negative) for the in-process tests; a module with other prompts defines its own."""
    import nodes as host_nodes
    encode = host_nodes.CLIPTextEncode().encode
    return encode(sd15[1], "photo of a green apple")[0], encode(sd15[1], "blurry")[0]
